package testenv

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Kustomize renders the kustomization in dir (a base or an overlay under
// deploy/) as `kubectl apply -k dir` does, with kustomize's default options
// (files only from within the kustomization's tree), and returns the objects
// in kustomize's output order (namespaces and CRDs first).
func Kustomize(dir string) ([]*unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range m.Resources() {
		// Through JSON, so numbers are int64 as in any unstructured object
		// (kustomize's own maps hold int).
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, r.CurId(), err)
		}
		out = append(out, u)
	}
	return out, nil
}

// ServerSideApply applies objs in order as fieldOwner, as `kubectl apply
// --server-side --force-conflicts --validate=strict` does: an unknown or
// duplicated field fails, and applying again (a changed overlay) updates
// the objects.
func ServerSideApply(ctx context.Context, cfg *rest.Config, fieldOwner string, objs ...*unstructured.Unstructured) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	for _, o := range objs {
		body, err := json.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		target := o.DeepCopy()
		err = c.Patch(ctx, target, client.RawPatch(types.ApplyPatchType, body),
			client.FieldOwner(fieldOwner), client.ForceOwnership, client.FieldValidation("Strict"))
		if err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}
