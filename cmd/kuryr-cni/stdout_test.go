package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// TestStdoutIsOnlyTheResult runs the binary by hand, as a runtime does, and
// looks at its raw stdout and stderr.
func TestStdoutIsOnlyTheResult(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1.0.0")
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"kuryr","type":"kuryr-cni","daemonSocket":%q}`, h.socket)
	run := func(cmd string) (stdout, stderr string, err error) {
		c := exec.Command(filepath.Join(h.binDir, "kuryr-cni"))
		c.Env = append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID=abc", "CNI_NETNS="+h.rt.NetNS,
			"CNI_IFNAME=net1", "CNI_PATH="+h.binDir,
			"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0")
		c.Stdin = strings.NewReader(conf)
		var o, e strings.Builder
		c.Stdout, c.Stderr = &o, &e
		err = c.Run()
		return o.String(), e.String(), err
	}

	// DEL with no daemon: success, nothing on stdout, the reason on stderr.
	out, errOut, err := run("DEL")
	if err != nil || out != "" || !strings.Contains(errOut, "not reachable at "+h.socket) {
		t.Fatalf("DEL without daemon: err %v, stdout %q, stderr %q", err, out, errOut)
	}

	rec := &recorder{}
	serve(t, rec, h.socket)
	out, _, err = run("ADD")
	if err != nil {
		t.Fatalf("ADD: %v (stdout %q)", err, out)
	}
	var res current.Result
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil || dec.More() {
		t.Fatalf("ADD stdout is not exactly one result: %v\n%s", err, out)
	}
	if res.CNIVersion != "1.0.0" || res.Interfaces[0].Name != "net1" {
		t.Fatalf("ADD result = %+v", res)
	}
	out, _, err = run("DEL")
	if err != nil || out != "" {
		t.Fatalf("DEL: err %v, stdout %q", err, out)
	}

	// An error is exactly one CNI error object on stdout, exit status 1.
	rec.setErr(cniapi.CmdAdd, types.NewError(cniapi.CodeTryAgainLater, "later", ""))
	out, _, err = run("ADD")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("failed ADD exit = %v", err)
	}
	var e types.Error
	dec = json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() || e.Code != cniapi.CodeTryAgainLater || e.Msg != "later" {
		t.Fatalf("failed ADD stdout = %q (%v)", out, err)
	}
}

// TestImports holds the rule that the shim imports the protocol, the
// configuration schema and CNI libraries only: no Kubernetes client, no
// other project package.
func TestImports(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const self = "github.com/kuryr-dpdk/kuryr-dpdk/"
	allowed := map[string]bool{self + "internal/cniapi": true, self + "internal/netconf": true, self + "internal/version": true, self + "cmd/kuryr-cni": true}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(p, "k8s.io/"), strings.HasPrefix(p, "sigs.k8s.io/"):
			t.Errorf("kuryr-cni depends on %s", p)
		case strings.HasPrefix(p, self) && !allowed[p]:
			t.Errorf("kuryr-cni imports project package %s", p)
		}
	}
}
