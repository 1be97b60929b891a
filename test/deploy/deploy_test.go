// Package deploy checks the manifests in deploy/ against a real API server:
// every object is accepted with strict field validation, and the
// configuration files they carry parse with the code that reads them.
package deploy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/controller"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, testenv.Options{CRDDirectoryPaths: []string{"../../deploy/crds", "../../deploy/third-party"}}))
}

func TestManifestsAreAcceptedAndTheirConfigParses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	files, err := filepath.Glob("../../deploy/kuryr-dpdk/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	objs, err := testenv.Apply(ctx, env.Config, append([]string{"../../deploy/kuryr-dpdk/rbac.yaml"}, files...)...)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		seen[o.GetKind()+"/"+o.GetName()] = o
	}
	for _, want := range []string{"Deployment/kuryr-controller", "DaemonSet/kuryr-daemon", "ClusterRole/kuryr-controller", "ClusterRole/kuryr-daemon", "ConfigMap/kuryr-controller", "ConfigMap/kuryr-cni"} {
		if seen[want] == nil {
			t.Errorf("deploy/kuryr-dpdk lacks %s", want)
		}
	}

	// The controller's configuration file parses and validates.
	cm := seen["ConfigMap/kuryr-controller"]
	body, _, _ := unstructured.NestedString(cm.Object, "data", "controller.yaml")
	p := filepath.Join(t.TempDir(), "controller.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := controller.Defaults()
	if err := opts.LoadFile(p); err != nil {
		t.Fatalf("ConfigMap kuryr-controller: %v", err)
	}
	if err := opts.Validate(); err != nil {
		t.Fatalf("ConfigMap kuryr-controller: %v", err)
	}

	// The CNI network config the daemon installs is a valid conflist whose
	// kuryr-cni entry the shim accepts.
	cm = seen["ConfigMap/kuryr-cni"]
	conf, _, _ := unstructured.NestedString(cm.Object, "data", "10-kuryr.conflist")
	list, err := libcni.NetworkConfFromBytes([]byte(conf))
	if err != nil {
		t.Fatalf("10-kuryr.conflist: %v", err)
	}
	if len(list.Plugins) != 1 {
		t.Fatalf("10-kuryr.conflist has %d plugins", len(list.Plugins))
	}
	// The runtime fills in name and cniVersion from the list, as libcni does.
	var plugin map[string]any
	if err := json.Unmarshal(list.Plugins[0].Bytes, &plugin); err != nil {
		t.Fatal(err)
	}
	plugin["name"], plugin["cniVersion"] = list.Name, list.CNIVersion
	b, _ := json.Marshal(plugin)
	if _, e := cniapi.ParseNetConf(b); e != nil {
		t.Fatalf("10-kuryr.conflist's plugin: %v", e)
	}
}
