package aio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/imagebuild"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// On real nodes kuryr-daemon (and kuryr-controller: controller.go) run as an
// operator deploys them: the DaemonSet
// of deploy/overlays/all-in-one, from the kuryr-dpdk image (built here from
// the environment's binaries as `make image` builds it, and imported into
// every node's containerd). Its init container installs kuryr-cni and the
// conflist into the node's /opt/cni/bin and /etc/cni/net.d; the daemon,
// a hostNetwork pod, runs in the node's network namespace and, through
// hostPaths, in the node's directories (nodePaths) and its simulated /sys
// (nodeSysfs).

// KuryrImage is the kuryr-dpdk image the manifests name (make image's IMAGE).
const KuryrImage = "kuryr-dpdk/kuryr-dpdk:dev"

// daemonNamespace and daemonSetName are deploy/kuryr-dpdk's.
const (
	daemonNamespace = "kuryr-dpdk"
	daemonSetName   = "kuryr-daemon"
)

// overlayDir is the overlay the real nodes run, relative to the repository;
// multusOverlayDir the one with Multus (Options.Multus, multus.go).
var (
	overlayDir       = filepath.Join("deploy", "overlays", "all-in-one")
	multusOverlayDir = filepath.Join("deploy", "overlays", "all-in-one-multus")
)

// overlay is the overlay this environment's real nodes run.
func (e *Env) overlay() string {
	if e.opts.Multus {
		return multusOverlayDir
	}
	return overlayDir
}

// buildKuryrImage writes the kuryr-dpdk image of the environment's binaries
// (imagebuild.KuryrSpec, as make image builds it) into the state directory.
func (e *Env) buildKuryrImage() error {
	var err error
	e.kuryrImage, err = BuildKuryrImage(e.binDir, filepath.Join(e.StateDir, "images"))
	return err
}

// BuildKuryrImage writes KuryrImage of the binaries in binDir
// (imagebuild.KuryrSpec, as make image builds it) into dir as an OCI layout
// tarball and returns its path.
func BuildKuryrImage(binDir, dir string) (string, error) {
	return writeImage(dir, "kuryr-dpdk.oci.tar", imagebuild.KuryrSpec(KuryrImage, binDir, ""))
}

// deployKuryr applies the overlay's kuryr-controller (controller.go) and
// kuryr-daemon with their ConfigMaps, and waits until the controller is
// available and the daemon serves on every node.
func (e *Env) deployKuryr(ctx context.Context) error {
	start := time.Now()
	objs, err := testenv.Kustomize(filepath.Join(e.opts.RepoRoot, e.overlay()))
	if err != nil {
		return err
	}
	rendered := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		rendered[o.GetKind()+"/"+o.GetName()] = o
	}
	apply, err := e.controllerObjects(rendered)
	if err != nil {
		return err
	}
	ds, cm := rendered["DaemonSet/"+daemonSetName], rendered["ConfigMap/kuryr-cni"]
	if ds == nil || cm == nil {
		return fmt.Errorf("%s renders no DaemonSet %s or ConfigMap kuryr-cni", e.overlay(), daemonSetName)
	}
	if err := e.checkAPIEnv(ds); err != nil {
		return err
	}
	apply = append(apply, cm, ds)
	if err := testenv.ServerSideApply(ctx, e.cp.Admin, "kuryr-aio", apply...); err != nil {
		return fmt.Errorf("apply %s: %w", e.overlay(), err)
	}
	if err := e.waitController(ctx); err != nil {
		return err
	}
	e.logf("kuryr-controller Deployment from %s available %.1f s after the apply", e.overlay(), time.Since(start).Seconds())
	for _, n := range e.Nodes {
		if err := e.waitDaemonPod(ctx, n); err != nil {
			return err
		}
	}
	e.logf("kuryr-daemon DaemonSet from %s serving on %d nodes %.1f s after the apply", e.overlay(), len(e.Nodes), time.Since(start).Seconds())
	if e.opts.Multus {
		return e.deployMultus(ctx, rendered)
	}
	return nil
}

// checkAPIEnv fails unless the containers of workload (a DaemonSet or a
// Deployment) are told the API server address the fabric proxy serves: the
// overlay hard-codes it.
func (e *Env) checkAPIEnv(workload *unstructured.Unstructured) error {
	var d struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(workload.Object, &d); err != nil {
		return fmt.Errorf("%s %s of %s: %w", workload.GetKind(), workload.GetName(), e.overlay(), err)
	}
	env := map[string]string{}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, v := range c.Env {
			env[v.Name] = v.Value
		}
	}
	got := net.JoinHostPort(env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"])
	if want := strings.TrimPrefix(e.cp.FabricURL, "https://"); got != want {
		return fmt.Errorf("%s sets KUBERNETES_SERVICE_HOST/_PORT of %s %s to %s, but the API server is at %s for the nodes",
			e.overlay(), workload.GetKind(), workload.GetName(), got, want)
	}
	return nil
}

// waitDaemonPod waits until n's kuryr-daemon pod runs and answers on the
// node's CNI socket.
func (e *Env) waitDaemonPod(ctx context.Context, n *Node) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		pod, err := e.DaemonPod(ctx, n)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if pod.Status.Phase != corev1.PodRunning {
			last = fmt.Sprintf("pod %s is %s", pod.Name, pod.Status.Phase)
			return false, nil
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := cniapi.NewClient(n.Socket).WaitReady(rctx, time.Second); err != nil {
			last = fmt.Sprintf("pod %s runs, socket %s: %v", pod.Name, n.Socket, err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("kuryr-daemon pod of %s not serving (%s; kubelet log %s): %w", n.Name, last, n.real.kubelet.Log, err)
	}
	e.logf("kuryr-daemon pod of %s serving on %s", n.Name, n.Socket)
	return nil
}

// DaemonPod is the kuryr-daemon pod of the DaemonSet on node n.
func (e *Env) DaemonPod(ctx context.Context, n *Node) (*corev1.Pod, error) {
	pods, err := e.Clientset.CoreV1().Pods(daemonNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app=" + daemonSetName, FieldSelector: "spec.nodeName=" + n.Name})
	if err != nil {
		return nil, fmt.Errorf("list kuryr-daemon pods of %s: %w", n.Name, err)
	}
	switch len(pods.Items) {
	case 0:
		return nil, errors.New("no kuryr-daemon pod on " + n.Name)
	case 1:
		return &pods.Items[0], nil
	}
	return nil, fmt.Errorf("%d kuryr-daemon pods on %s", len(pods.Items), n.Name)
}
