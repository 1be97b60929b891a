package v1alpha1

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// LiveKuryrNodeStatus reads the status of KuryrNode name with r, a reader
// of the API server itself (a manager's API reader, an uncached client),
// not an informer's cache: what the controller has written by now. There
// being no such KuryrNode is an empty status, not an error. It costs one
// GET: the node side (kuryr-daemon's CNI ADD, its DRA driver's Prepare)
// makes one only to confirm that a device its watch does not show as the
// consumer's is not, before refusing it.
func LiveKuryrNodeStatus(ctx context.Context, r client.Reader, name string) (*KuryrNodeStatus, error) {
	var kn KuryrNode
	err := r.Get(ctx, types.NamespacedName{Name: name}, &kn)
	if apierrors.IsNotFound(err) {
		return &KuryrNodeStatus{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read KuryrNode %s from the API server: %w", name, err)
	}
	return &kn.Status, nil
}
