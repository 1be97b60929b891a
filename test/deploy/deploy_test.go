// Package deploy checks the manifests in deploy/ against a real API server:
// the kustomize base (deploy/kuryr-dpdk) and the all-in-one overlay render
// with the kustomize API as `kubectl apply -k` renders them, every object is
// accepted by server-side apply with strict field validation, and the
// configuration files they carry parse with the code that reads them.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/controller"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/ctl"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

const (
	base      = "../../deploy/kuryr-dpdk"
	allInOne  = "../../deploy/overlays/all-in-one"
	aioMultus = "../../deploy/overlays/all-in-one-multus"
	image     = "kuryr-dpdk/kuryr-dpdk:dev"
	testOwner = "kuryr-dpdk-deploy-test"
)

var env *testenv.Env

// The API server starts without CRDs: the base installs its own.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, testenv.Options{}))
}

// render renders a kustomization and indexes its objects by kind/name.
func render(t *testing.T, dir string) ([]*unstructured.Unstructured, map[string]*unstructured.Unstructured) {
	t.Helper()
	objs, err := testenv.Kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		seen[o.GetKind()+"/"+o.GetName()] = o
	}
	return objs, seen
}

func apply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testenv.ServerSideApply(ctx, env.Config, testOwner, objs...); err != nil {
		t.Fatal(err)
	}
}

func TestBaseIsAcceptedAndItsConfigParses(t *testing.T) {
	objs, seen := render(t, base)
	apply(t, objs)
	for _, want := range []string{"Deployment/kuryr-controller", "DaemonSet/kuryr-daemon", "ClusterRole/kuryr-controller", "ClusterRole/kuryr-daemon",
		"ConfigMap/kuryr-controller", "ConfigMap/kuryr-cni", "Namespace/kuryr-dpdk",
		"CustomResourceDefinition/kuryrpods.kuryr-dpdk.io", "CustomResourceDefinition/kuryrnodes.kuryr-dpdk.io",
		"CustomResourceDefinition/kuryrtenantpolicies.kuryr-dpdk.io"} {
		if seen[want] == nil {
			t.Errorf("deploy/kuryr-dpdk lacks %s", want)
		}
	}

	// Every container runs the image by the tag `make image` gives it.
	for _, k := range []string{"Deployment/kuryr-controller", "DaemonSet/kuryr-daemon"} {
		for _, c := range containers(t, seen[k]) {
			if c["image"] != image {
				t.Errorf("%s container %s: image %v, want %s", k, c["name"], c["image"], image)
			}
		}
	}

	// The init container installs the shim with kuryrctl: the image has no
	// shell. The socket it writes into the node-local file (the only place
	// the shim takes it from) is the one the daemon listens on.
	sockets := map[string]string{}
	for _, c := range containers(t, seen["DaemonSet/kuryr-daemon"]) {
		args, _ := c["args"].([]any)
		for _, a := range args {
			s, _ := a.(string)
			for _, flag := range []string{"--daemon-socket=", "--socket="} {
				if v, ok := strings.CutPrefix(s, flag); ok {
					sockets[c["name"].(string)] = v
				}
			}
		}
		if c["name"] != "install-cni" {
			continue
		}
		cmd, _ := json.Marshal(c["command"])
		if string(cmd) != `["/usr/bin/kuryrctl","install-cni"]` {
			t.Errorf("init container install-cni runs %s", cmd)
		}
	}
	if sockets["install-cni"] == "" || sockets["install-cni"] != sockets["daemon"] {
		t.Errorf("install-cni writes socket %q for the shim, the daemon listens on %q", sockets["install-cni"], sockets["daemon"])
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

	// It is the conflist `kuryrctl install-cni` writes by default.
	def, err := ctl.DefaultConflist("kuryr")
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal([]byte(conf), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(def, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigMap kuryr-cni's conflist differs from install-cni's default:\n%s\nvs\n%s", conf, def)
	}
}

// TestBaseHoldsEveryManifest: an object in a file under deploy/kuryr-dpdk or
// deploy/crds that the kustomization does not list would never be deployed.
func TestBaseHoldsEveryManifest(t *testing.T) {
	_, seen := render(t, base)
	var files []string
	for _, glob := range []string{base + "/*.yaml", "../../deploy/crds/*.yaml"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	var missing []string
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, o := range decodeFile(t, f) {
			n++
			if seen[o.GetKind()+"/"+o.GetName()] == nil {
				missing = append(missing, f+": "+o.GetKind()+"/"+o.GetName())
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d objects in %v", n, files)
	}
	if n != len(seen) {
		t.Errorf("the files hold %d objects, the base renders %d", n, len(seen))
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("not in the base (deploy/kuryr-dpdk/kustomization.yaml):\n%s", strings.Join(missing, "\n"))
	}
}

func TestAllInOneOverlayIsAccepted(t *testing.T) {
	objs, seen := render(t, allInOne)
	apply(t, objs)
	if seen["CustomResourceDefinition/network-attachment-definitions.k8s.cni.cncf.io"] == nil {
		t.Error("the all-in-one overlay lacks the NAD CRD (it runs without Multus)")
	}
	_, baseSeen := render(t, base)
	for k := range baseSeen {
		if seen[k] == nil {
			t.Errorf("the all-in-one overlay lacks the base's %s", k)
		}
	}
	// No registry: the images are imported, never pulled.
	for _, k := range []string{"Deployment/kuryr-controller", "DaemonSet/kuryr-daemon"} {
		cs := containers(t, seen[k])
		if len(cs) == 0 {
			t.Fatalf("%s has no containers", k)
		}
		for _, c := range cs {
			if c["image"] != image || c["imagePullPolicy"] != "Never" {
				t.Errorf("%s container %s: image %v pull policy %v", k, c["name"], c["image"], c["imagePullPolicy"])
			}
		}
	}
	if r, _, _ := unstructured.NestedInt64(seen["Deployment/kuryr-controller"].Object, "spec", "replicas"); r != 1 {
		t.Errorf("all-in-one controller replicas %d, want 1", r)
	}
	// One replica: nothing to elect, and a lost lease would stop it.
	if args := fmt.Sprint(containers(t, seen["Deployment/kuryr-controller"])[0]["args"]); !strings.Contains(args, "--leader-elect=false") {
		t.Errorf("all-in-one controller args %s, want --leader-elect=false", args)
	}
}

// TestMultusOverlayIsAccepted: the all-in-one with Multus
// (deploy/third-party/multus) is accepted with strict validation; kuryr-daemon
// is a delegate there (--primary=false) and nothing else of the all-in-one
// differs; Multus' clusterNetwork is the conflist install-cni writes, and
// its image is the one built from the module proxy, imported, never pulled.
func TestMultusOverlayIsAccepted(t *testing.T) {
	objs, seen := render(t, aioMultus)
	apply(t, objs)
	for _, want := range []string{"ServiceAccount/multus", "ClusterRole/multus", "ClusterRoleBinding/multus", "ConfigMap/multus-cni-config", "DaemonSet/kube-multus"} {
		if seen[want] == nil {
			t.Errorf("%s lacks %s", aioMultus, want)
		}
	}
	_, aio := render(t, allInOne)
	for k, o := range aio {
		m := seen[k]
		if m == nil {
			t.Errorf("%s lacks the all-in-one's %s", aioMultus, k)
			continue
		}
		if k == "DaemonSet/kuryr-daemon" {
			continue
		}
		if !reflect.DeepEqual(m.Object, o.Object) {
			t.Errorf("%s differs from the all-in-one's", k)
		}
	}
	var daemonArgs []string
	for _, c := range containers(t, seen["DaemonSet/kuryr-daemon"]) {
		if c["name"] == "daemon" {
			for _, a := range c["args"].([]any) {
				daemonArgs = append(daemonArgs, a.(string))
			}
		}
	}
	if !slices.Contains(daemonArgs, "--primary=false") || slices.Contains(daemonArgs, "--primary") {
		t.Errorf("kuryr-daemon args %v, want --primary=false and no --primary", daemonArgs)
	}
	cs := containers(t, seen["DaemonSet/kube-multus"])
	if len(cs) != 1 || cs[0]["image"] != "kuryr-dpdk/multus-cni:"+testenv.MultusVersion || cs[0]["imagePullPolicy"] != "Never" {
		t.Errorf("kube-multus containers %v: want image kuryr-dpdk/multus-cni:%s, pull policy Never", cs, testenv.MultusVersion)
	}
	conf, _, _ := unstructured.NestedString(seen["ConfigMap/multus-cni-config"].Object, "data", "00-multus.conf")
	var mc struct {
		Type, ClusterNetwork, Kubeconfig string
	}
	if err := json.Unmarshal([]byte(conf), &mc); err != nil {
		t.Fatalf("00-multus.conf: %v", err)
	}
	if mc.Type != "multus" || mc.ClusterNetwork != "/etc/cni/net.d/10-kuryr.conflist" || mc.Kubeconfig != "/etc/cni/net.d/multus.d/multus.kubeconfig" {
		t.Errorf("00-multus.conf %+v: want type multus, clusterNetwork kuryr's conflist, the kubeconfig thin_entrypoint writes", mc)
	}
	if seen["ConfigMap/kuryr-cni"] == nil || !strings.Contains(fmt.Sprint(containers(t, seen["DaemonSet/kuryr-daemon"])), "--conflist=/etc/kuryr-cni/10-kuryr.conflist") {
		t.Error("kuryr-daemon's install-cni no longer writes 10-kuryr.conflist, Multus' clusterNetwork")
	}
}

// TestApplyIsStrict: the apply the tests use refuses a misspelt field, so
// that the tests above would catch one in a manifest or a patch.
func TestApplyIsStrict(t *testing.T) {
	objs, seen := render(t, base)
	apply(t, objs)
	d := seen["Deployment/kuryr-controller"].DeepCopy()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	cs[0].(map[string]any)["imagePullPolcy"] = "Never"
	if err := unstructured.SetNestedSlice(d.Object, cs, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := testenv.ServerSideApply(ctx, env.Config, testOwner, d)
	if err == nil || !strings.Contains(err.Error(), "imagePullPolcy") {
		t.Fatalf("apply with a misspelt field: %v, want an error naming it", err)
	}
}

// containers returns a workload's init containers and containers.
func containers(t *testing.T, o *unstructured.Unstructured) []map[string]any {
	t.Helper()
	if o == nil {
		t.Fatal("no such object")
	}
	var out []map[string]any
	for _, field := range []string{"initContainers", "containers"} {
		cs, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", field)
		if err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		for _, c := range cs {
			out = append(out, c.(map[string]any))
		}
	}
	return out
}

func decodeFile(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}
