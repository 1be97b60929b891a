package aio

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestOverlayTellsPodsTheFabricAPIServer: the all-in-one overlays'
// kuryr-controller and kuryr-daemon (and Multus, in all-in-one-multus) are
// told the API server address the fabric proxy serves (the workers'
// gateway, FabricAPIPort), and checkAPIEnv refuses them for any other
// address.
func TestOverlayTellsPodsTheFabricAPIServer(t *testing.T) {
	t.Parallel()
	for overlay, want := range map[string]int{overlayDir: 2, multusOverlayDir: 3} {
		objs, err := testenv.Kustomize(filepath.Join("..", "..", overlay))
		if err != nil {
			t.Fatal(err)
		}
		const gateway = "10.0.0.1" // of the workers' subnet startCloud seeds, 10.0.0.0/24
		right := &Env{cp: controlPlane{FabricURL: "https://" + net.JoinHostPort(gateway, strconv.Itoa(FabricAPIPort))}}
		wrong := &Env{cp: controlPlane{FabricURL: "https://" + net.JoinHostPort(gateway, "16443")}}
		checked := 0
		for _, o := range objs {
			switch o.GetKind() + "/" + o.GetName() {
			case "DaemonSet/" + daemonSetName, "Deployment/" + controllerName, "DaemonSet/" + multusDaemonSet:
			default:
				continue
			}
			checked++
			if err := right.checkAPIEnv(o); err != nil {
				t.Error(err)
			}
			if err := wrong.checkAPIEnv(o); err == nil {
				t.Errorf("%s: %s %s accepted for an API server at %s", overlay, o.GetKind(), o.GetName(), wrong.cp.FabricURL)
			}
		}
		if checked != want {
			t.Errorf("checked %d workloads of %s, want %d (kuryr-daemon, kuryr-controller and, with Multus, kube-multus)", checked, overlay, want)
		}
	}
}
