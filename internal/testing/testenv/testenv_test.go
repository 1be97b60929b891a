package testenv_test

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env, testenv.Options{})) }

func TestServerIsRealKubeAPIServer(t *testing.T) {
	cs := kubernetes.NewForConfigOrDie(env.Config)
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != testenv.KubeVersion {
		t.Fatalf("kube-apiserver reports %q, want %q (was it built by hack/build-kube-bins.sh?)", v.GitVersion, testenv.KubeVersion)
	}
}

func TestPodCreateReadWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	pods := cs.CoreV1().Pods("default")

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Annotations: map[string]string{
			"k8s.v1.cni.cncf.io/networks": "mgmt,dataplane@dpdk0",
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	if created.UID == "" {
		t.Fatalf("created pod has no UID: the API server did not persist it")
	}

	got, err := pods.Get(ctx, "probe", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	if got.UID != created.UID || got.Annotations["k8s.v1.cni.cncf.io/networks"] != "mgmt,dataplane@dpdk0" {
		t.Fatalf("read back %s/%v, want %s with the networks annotation", got.UID, got.Annotations, created.UID)
	}

	w, err := pods.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", "probe").String(),
		ResourceVersion: got.ResourceVersion,
	})
	if err != nil {
		t.Fatalf("watch pod: %v", err)
	}
	defer w.Stop()

	patch := []byte(`{"metadata":{"labels":{"kuryr-dpdk.io/seen":"yes"}}}`)
	if _, err := pods.Patch(ctx, "probe", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch pod: %v", err)
	}
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed before the change arrived")
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if ev.Type == watch.Modified && isPod && p.Labels["kuryr-dpdk.io/seen"] == "yes" {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no watch event for the label change: %v", ctx.Err())
		}
	}
}
