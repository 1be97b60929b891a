package aio

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestOverlayTellsPodsTheFabricAPIServer: the all-in-one overlay's
// kuryr-controller and kuryr-daemon are told the API server address the
// fabric proxy serves (the workers' gateway, FabricAPIPort), and
// checkAPIEnv refuses them for any other address.
func TestOverlayTellsPodsTheFabricAPIServer(t *testing.T) {
	t.Parallel()
	objs, err := testenv.Kustomize(filepath.Join("..", "..", overlayDir))
	if err != nil {
		t.Fatal(err)
	}
	const gateway = "10.0.0.1" // of the workers' subnet startCloud seeds, 10.0.0.0/24
	right := &Env{cp: controlPlane{FabricURL: "https://" + net.JoinHostPort(gateway, strconv.Itoa(FabricAPIPort))}}
	wrong := &Env{cp: controlPlane{FabricURL: "https://" + net.JoinHostPort(gateway, "16443")}}
	checked := 0
	for _, o := range objs {
		if (o.GetKind() != "DaemonSet" || o.GetName() != daemonSetName) && (o.GetKind() != "Deployment" || o.GetName() != controllerName) {
			continue
		}
		checked++
		if err := right.checkAPIEnv(o); err != nil {
			t.Error(err)
		}
		if err := wrong.checkAPIEnv(o); err == nil {
			t.Errorf("%s %s accepted for an API server at %s", o.GetKind(), o.GetName(), wrong.cp.FabricURL)
		}
	}
	if checked != 2 {
		t.Errorf("checked %d workloads of %s, want the DaemonSet and the Deployment", checked, overlayDir)
	}
}
