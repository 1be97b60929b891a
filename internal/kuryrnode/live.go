// Package kuryrnode reads a node's KuryrNode for the node side (kuryr-daemon,
// its DRA driver). It is not in api/v1alpha1, so that the API types do not
// import controller-runtime.
package kuryrnode

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// LiveStatus reads the status of KuryrNode name with r, a reader
// of the API server itself (a manager's API reader, an uncached client),
// not an informer's cache: what the controller has written by now. There
// being no such KuryrNode is an empty status, not an error. It costs one
// GET: the node side (kuryr-daemon's CNI ADD, its DRA driver's Prepare)
// makes one only to confirm that a device its watch does not show as the
// consumer's is not, before refusing it.
func LiveStatus(ctx context.Context, r client.Reader, name string) (*v1alpha1.KuryrNodeStatus, error) {
	var kn v1alpha1.KuryrNode
	err := r.Get(ctx, types.NamespacedName{Name: name}, &kn)
	if apierrors.IsNotFound(err) {
		return &v1alpha1.KuryrNodeStatus{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read KuryrNode %s from the API server: %w", name, err)
	}
	return &kn.Status, nil
}
