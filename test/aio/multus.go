package aio

import (
	"context"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/imagebuild"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// With Options.Multus the real nodes run real Multus (v4.2.3, the thin
// plugin, built from the module proxy by hack/build-multus.sh) as an
// operator installs it: the DaemonSet of deploy/third-party/multus, through
// deploy/overlays/all-in-one-multus, from an image with the layout of
// Multus' own (imagebuild.MultusSpec) imported into every node. Its
// thin_entrypoint copies multus into the node's /opt/cni/bin, writes its
// kubeconfig from the pod's ServiceAccount token and 00-multus.conf into
// /etc/cni/net.d, which containerd then uses: containerd calls multus,
// and multus calls kuryr-cni for eth0 (its clusterNetwork, kuryr's
// conflist) and for every NetworkAttachmentDefinition of the pod.

// MultusImage is the Multus image the all-in-one-multus overlay names.
const MultusImage = "kuryr-dpdk/multus-cni:" + testenv.MultusVersion

// Multus' DaemonSet and the files its installer writes on a node.
const (
	multusNamespace  = "kube-system"
	multusDaemonSet  = "kube-multus"
	MultusConfFile   = "/etc/cni/net.d/00-multus.conf"
	multusKubeconfig = "/etc/cni/net.d/multus.d/multus.kubeconfig"
	multusBinary     = "/opt/cni/bin/multus"
	// MultusCacheDir is Multus' own state on a node (its default cniDir):
	// the delegates of each sandbox and libcni's cache of their results.
	MultusCacheDir = "/var/lib/cni/multus"
)

// BuildMultusImage writes MultusImage of the binaries in binDir
// (imagebuild.MultusSpec) into dir as an OCI layout tarball and returns its
// path.
func BuildMultusImage(binDir, dir string) (string, error) {
	return writeImage(dir, "multus.oci.tar", imagebuild.MultusSpec(MultusImage, binDir, testenv.MultusVersion))
}

// multusObjects are the objects of deploy/third-party/multus in the
// rendered overlay, in the order to apply them.
var multusObjects = []string{"ServiceAccount/multus", "ClusterRole/multus", "ClusterRoleBinding/multus",
	"ConfigMap/multus-cni-config", "DaemonSet/" + multusDaemonSet}

// deployMultus applies Multus' objects of the rendered overlay and waits
// until its installer has put multus, its kubeconfig and 00-multus.conf on
// every node.
func (e *Env) deployMultus(ctx context.Context, rendered map[string]*unstructured.Unstructured) error {
	start := time.Now()
	var apply []*unstructured.Unstructured
	for _, k := range multusObjects {
		o := rendered[k]
		if o == nil {
			return fmt.Errorf("%s renders no %s", e.overlay(), k)
		}
		apply = append(apply, o)
	}
	if err := e.checkAPIEnv(rendered["DaemonSet/"+multusDaemonSet]); err != nil {
		return err
	}
	if err := testenv.ServerSideApply(ctx, e.cp.Admin, "kuryr-aio", apply...); err != nil {
		return fmt.Errorf("apply Multus of %s: %w", e.overlay(), err)
	}
	for _, n := range e.Nodes {
		if err := e.waitMultus(ctx, n); err != nil {
			return err
		}
	}
	e.logf("Multus %s (DaemonSet %s/%s) installed on %d nodes %.1f s after the apply",
		testenv.MultusVersion, multusNamespace, multusDaemonSet, len(e.Nodes), time.Since(start).Seconds())
	return nil
}

// waitMultus waits until n's Multus pod runs and its installer has written
// the binary, the kubeconfig and the configuration.
func (e *Env) waitMultus(ctx context.Context, n *Node) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := e.Clientset.CoreV1().Pods(multusNamespace).List(ctx, metav1.ListOptions{
			LabelSelector: "app=multus", FieldSelector: "spec.nodeName=" + n.Name})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
			last = fmt.Sprintf("%d Multus pods on the node, not one running", len(pods.Items))
			return false, nil
		}
		for _, f := range []string{multusBinary, multusKubeconfig, MultusConfFile} {
			if _, err := os.Stat(n.FS(f)); err != nil {
				last = fmt.Sprintf("pod %s runs; %v", pods.Items[0].Name, err)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("multus not installed on %s (%s; kubelet log %s): %w", n.Name, last, n.real.kubelet.Log, err)
	}
	return nil
}
