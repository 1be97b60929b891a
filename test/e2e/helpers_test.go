package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// setup makes a namespace with the two NADs for one test, and returns a
// context bounded by timeout. The test's pods are deleted when it ends.
func setup(t *testing.T, namespace string, timeout time.Duration) context.Context {
	t.Helper()
	testenv.RequireNodeBins(t)
	if env == nil {
		t.Fatal("the environment did not start (see TestMain's output)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	if err := env.CreateNADs(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanNamespace(t, namespace) })
	return ctx
}

// cleanNamespace deletes the pods a test left in namespace (it failed
// half-way) and waits for them to go, so the next test starts clean.
func cleanNamespace(t *testing.T, namespace string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods, err := env.Clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("clean up namespace %s: %v", namespace, err)
		return
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	if len(names) > 0 {
		deleteAndWait(t, ctx, namespace, names...)
	}
}

// dpdkPod is aio.DPDKPod (the management network and a DPDK interface)
// adapted to the real nodes (aio.Env.AdaptPod: the local pause image, no
// CPU, memory or hugepages requests), with a short grace period.
func dpdkPod(namespace, name string) *corev1.Pod {
	p := aio.DPDKPod(namespace, name)
	env.AdaptPod(p)
	p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(1))
	return p
}

func createPod(t *testing.T, ctx context.Context, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := env.CreatePod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kuryrPod(t *testing.T, ctx context.Context, namespace, name string) *v1alpha1.KuryrPod {
	t.Helper()
	var kp v1alpha1.KuryrPod
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &kp); err != nil {
		t.Fatalf("KuryrPod %s/%s: %v", namespace, name, err)
	}
	return &kp
}

func getPod(t *testing.T, ctx context.Context, namespace, name string) *corev1.Pod {
	t.Helper()
	p, err := env.Clientset.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// deleteAndWait deletes pods and waits until they and their KuryrPods are
// gone (the controller's finalizer is removed once the cloud is released).
func deleteAndWait(t *testing.T, ctx context.Context, namespace string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := env.Clientset.CoreV1().Pods(namespace).Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := env.Clientset.CoreV1().Pods(namespace).Get(ctx, n, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return false, nil
			}
			err = env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: n}, &v1alpha1.KuryrPod{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Fatalf("pod %s/%s or its KuryrPod not gone: %v", namespace, n, err)
		}
	}
}

// leaks lists what is left in the cloud and on the nodes (aio.Env.Leaks).
func leaks() []string { return env.Leaks() }

// requireNoLeaks waits a little for releases in flight, then fails the
// test with whatever is left.
func requireNoLeaks(t *testing.T, ctx context.Context) {
	t.Helper()
	var left []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		left = leaks()
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("left behind: %s", strings.Join(left, "; "))
	}
}

// waitReady waits for every named pod to be ready.
func waitReady(t *testing.T, ctx context.Context, namespace string, timeout time.Duration, names ...string) {
	t.Helper()
	var errs []error
	for _, n := range names {
		if err := env.WaitPodReady(ctx, namespace, n, timeout); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
}
