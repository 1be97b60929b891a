package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Apply creates every object of the YAML files (multi-document) on the API
// server, with strict field validation so that a misspelt field fails, and
// returns them. Objects that already exist are left as they are.
func Apply(ctx context.Context, cfg *rest.Config, files ...string) ([]*unstructured.Unstructured, error) {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		objs, err := decodeFile(f)
		if err != nil {
			return nil, err
		}
		for _, u := range objs {
			if err := c.Create(ctx, u, client.FieldValidation("Strict")); err != nil && !isAlreadyExists(err) {
				return nil, fmt.Errorf("%s: create %s %s: %w", f, u.GetKind(), u.GetName(), err)
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// decodeFile reads the objects of a YAML file (multi-document).
func decodeFile(f string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }
