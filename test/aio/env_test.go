package aio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// The package's tests share one environment without kuryr-controller and
// kuryr-daemon: the kubelet stand-ins call the fake CNI plugin.
var (
	env       *Env
	recordDir string
)

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == fakeCNIName {
		os.Exit(fakeCNIMain())
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips (or fails under KURYR_TEST_STRICT) by RequireRoot
	}
	tmp, err := os.MkdirTemp("", "kuryr-aio-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir, recordDir := filepath.Join(tmp, "bin"), filepath.Join(tmp, "calls")
	for _, d := range []string{binDir, recordDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	setRecordDir(recordDir)
	if err := os.Symlink(self, filepath.Join(binDir, fakeCNIName)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"fake","type":%q,"recordDir":%q,"failPods":["fail-me","fail-del-once"],"failDelOncePods":["fail-del-once"],`+
		`"capabilities":{"io.kubernetes.cri.pod-annotations":true}}`, fakeCNIName, recordDir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := Start(ctx, Options{Nodes: 2, NoKuryr: true, BinDir: binDir, CNIBinDir: binDir, CNIConfig: []byte(conf), Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start the all-in-one environment: %v\n", err)
		return 1
	}
	env = e
	code := m.Run()
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: tear down: %v\n", err)
		return 1
	}
	return code
}

func setRecordDir(d string) { recordDir = d }

func TestNodesRegisteredAndWired(t *testing.T) {
	netnstest.RequireRoot(t)
	ctx := context.Background()
	for _, n := range env.Nodes {
		node, err := env.Clientset.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("node %s: %v", n.Name, err)
		}
		if node.Spec.ProviderID != "openstack:///"+n.Server.Server.ID {
			t.Errorf("node %s providerID %q", n.Name, node.Spec.ProviderID)
		}
		if hp := node.Status.Capacity["hugepages-2Mi"]; hp.IsZero() {
			t.Errorf("node %s has no hugepages-2Mi capacity: %v", n.Name, node.Status.Capacity)
		}
		var ready bool
		for _, c := range node.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		if !ready {
			t.Errorf("node %s not Ready: %v", n.Name, node.Status.Conditions)
		}
		err = inNS(n.NetNS, func() error {
			l, err := netlink.LinkByName(NodeNIC)
			if err != nil {
				return err
			}
			if l.Attrs().HardwareAddr.String() != n.Server.ParentPort.MACAddress {
				return fmt.Errorf("%s MAC %s, want the parent port's %s", NodeNIC, l.Attrs().HardwareAddr, n.Server.ParentPort.MACAddress)
			}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			if len(addrs) != 1 || addrs[0].IP.String() != n.IP() {
				return fmt.Errorf("%s addresses %v, want %s", NodeNIC, addrs, n.IP())
			}
			return nil
		})
		if err != nil {
			t.Errorf("node %s: %v", n.Name, err)
		}
	}
	// The fabric joins the nodes: node-2 reaches a listener on node-1's IP.
	n1, n2 := env.Nodes[0], env.Nodes[1]
	var l net.Listener
	if err := inNS(n1.NetNS, func() (err error) { l, err = net.Listen("tcp", net.JoinHostPort(n1.IP(), "0")); return err }); err != nil {
		t.Fatalf("listen in %s: %v", n1.Name, err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			_ = c.Close()
		}
	}()
	err := inNS(n2.NetNS, func() error {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		t.Errorf("%s cannot reach %s over the fabric: %v", n2.Name, l.Addr(), err)
	}
}

func readCall(t *testing.T, containerID, cmd string) (fakeCall, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(recordDir, containerID+"-"+cmd+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return fakeCall{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var c fakeCall
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c, true
}

// podAdds are the ADD calls the fake plugin recorded for pod name.
func podAdds(t *testing.T, name string) ([]fakeCall, error) {
	t.Helper()
	entries, err := os.ReadDir(recordDir)
	if err != nil {
		return nil, err
	}
	var out []fakeCall
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), "-ADD.json")
		if !ok {
			continue
		}
		if c, _ := readCall(t, id, "ADD"); strings.Contains(c.Args, "K8S_POD_NAME="+name) {
			out = append(out, c)
		}
	}
	return out, nil
}

func testPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{"example.com/note": "hello"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
}

func TestKubeletRunsCNILikeContainerd(t *testing.T) {
	netnstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pod, err := env.CreatePod(ctx, testPod("web"))
	if err != nil {
		t.Fatal(err)
	}
	pods := env.Clientset.CoreV1().Pods("default")
	var running *corev1.Pod
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, "web", metav1.GetOptions{})
		running = p
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod not Running: %v (%+v)", err, running.Status)
	}
	if !strings.HasPrefix(running.Status.PodIP, "10.99.") {
		t.Errorf("pod IP %q, want the fake plugin's 10.99.x.y", running.Status.PodIP)
	}
	n := env.Node(running.Spec.NodeName)
	netns := n.Kubelet.NetNS("default", "web")
	if netns == "" {
		t.Fatal("no sandbox recorded for pod default/web")
	}
	sandboxID := strings.TrimPrefix(running.Status.ContainerStatuses[0].ContainerID, "kuryr-aio://")
	add, ok := readCall(t, sandboxID, "ADD")
	if !ok {
		t.Fatalf("no ADD recorded for sandbox %s", sandboxID)
	}
	for _, want := range []string{"K8S_POD_NAMESPACE=default", "K8S_POD_NAME=web", "K8S_POD_INFRA_CONTAINER_ID=" + sandboxID,
		"K8S_POD_UID=" + string(pod.UID), "IgnoreUnknown=1"} {
		if !strings.Contains(";"+add.Args+";", ";"+want+";") {
			t.Errorf("CNI_ARGS %q lacks %s", add.Args, want)
		}
	}
	if add.IfName != "eth0" || add.NetNS != netns {
		t.Errorf("ADD ifname %q netns %q, want eth0 and %s", add.IfName, add.NetNS, netns)
	}
	var stdin struct {
		Name          string                       `json:"name"`
		CNIVersion    string                       `json:"cniVersion"`
		RuntimeConfig map[string]map[string]string `json:"runtimeConfig"`
	}
	if err := json.Unmarshal(add.Stdin, &stdin); err != nil {
		t.Fatal(err)
	}
	if stdin.Name != "fake" || stdin.CNIVersion != "1.1.0" || stdin.RuntimeConfig[podAnnotationsCap]["example.com/note"] != "hello" {
		t.Errorf("ADD stdin %s: want name, cniVersion and the pod annotations in runtimeConfig", add.Stdin)
	}
	if err := inNS(netns, func() error { _, err := netlink.LinkByName("eth0"); return err }); err != nil {
		t.Errorf("pod namespace %s has no eth0: %v", netns, err)
	}
	if tm, ok := env.Timing(pod.UID); !ok || tm.NetworkReady() <= 0 || tm.AddDone.Before(tm.AddStart) {
		t.Errorf("timing %+v: want created < ADD start <= ADD done", tm)
	}

	if err := pods.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := pods.Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod not deleted: %v", err)
	}
	del, ok := readCall(t, sandboxID, "DEL")
	if !ok {
		t.Fatalf("no DEL for sandbox %s", sandboxID)
	}
	if !strings.Contains(string(del.Stdin), `"prevResult"`) {
		t.Errorf("DEL stdin has no prevResult: %s", del.Stdin)
	}
	if _, err := os.Stat(netns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod namespace %s still exists (%v)", netns, err)
	}
}

func TestFailedAddIsFollowedByDelAndAnEvent(t *testing.T) {
	netnstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pod, err := env.CreatePod(ctx, testPod("fail-me"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = env.Clientset.CoreV1().Pods("default").Delete(context.Background(), "fail-me", metav1.DeleteOptions{})
	}()
	var ev corev1.Event
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		evs, err := env.Clientset.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.uid=" + string(pod.UID) + ",reason=FailedCreatePodSandBox"})
		if err != nil || len(evs.Items) == 0 {
			return false, nil
		}
		ev = evs.Items[0]
		return true, nil
	})
	if err != nil {
		t.Fatalf("no Event for the failed sandbox: %v", err)
	}
	if ev.Reason != "FailedCreatePodSandBox" || !strings.Contains(ev.Message, "fake plugin refuses pod fail-me") {
		t.Errorf("event %s: %s", ev.Reason, ev.Message)
	}
	// Every ADD was followed by a DEL of the same sandbox.
	adds, err := podAdds(t, "fail-me")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range adds {
		id := c.ContainerID
		if _, ok := readCall(t, id, "DEL"); !ok {
			t.Errorf("failed ADD of sandbox %s was not followed by DEL", id)
		}
		if _, err := os.Stat(c.NetNS); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s of the failed sandbox remains", c.NetNS)
		}
	}
	if len(adds) == 0 {
		t.Error("no ADD recorded for pod fail-me")
	}
	p, err := env.Clientset.CoreV1().Pods("default").Get(ctx, "fail-me", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase == corev1.PodRunning {
		t.Error("pod fail-me is Running although every ADD failed")
	}
}

// A sandbox whose ADD failed and whose DEL failed too is torn down again,
// as a kubelet stops such a sandbox until the runtime's teardown succeeds:
// the fake plugin fails pod fail-del-once's ADDs and the first DEL of each
// of its sandboxes; the stand-in runs that sandbox's DEL again, and only
// once it succeeded removes its namespace and starts the next sandbox. The
// test fails if a sandbox's DEL is not repeated after its failure, if its
// namespace stays, or if a new sandbox's ADD comes before the old one's
// successful DEL.
func TestFailedDelOfAFailedSandboxIsRetried(t *testing.T) {
	netnstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := env.CreatePod(ctx, testPod("fail-del-once")); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = env.Clientset.CoreV1().Pods("default").Delete(context.Background(), "fail-del-once", metav1.DeleteOptions{})
	}()
	type sandboxCalls struct {
		id                    string
		add, delFailed, delOK time.Time
		netns                 string
	}
	var sbs []sandboxCalls
	mtime := func(name string) time.Time {
		fi, err := os.Stat(filepath.Join(recordDir, name))
		if err != nil {
			return time.Time{}
		}
		return fi.ModTime()
	}
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		adds, err := podAdds(t, "fail-del-once")
		if err != nil {
			return false, err
		}
		sbs = sbs[:0]
		for _, c := range adds {
			id := c.ContainerID
			sbs = append(sbs, sandboxCalls{id: id, add: mtime(id + "-ADD.json"), delFailed: mtime(id + fakeDelFailedSuffix),
				delOK: mtime(id + "-DEL.json"), netns: c.NetNS})
		}
		slices.SortFunc(sbs, func(a, b sandboxCalls) int { return a.add.Compare(b.add) })
		return len(sbs) >= 2, nil
	})
	if err != nil {
		t.Fatalf("pod fail-del-once: %d sandboxes' ADDs seen, want a second one after the first's DEL was retried: %v", len(sbs), err)
	}
	first, second := sbs[0], sbs[1]
	if first.delFailed.IsZero() {
		t.Fatalf("the first sandbox %s had no failed DEL (the fake plugin fails the first)", first.id)
	}
	if !first.delOK.After(first.delFailed) {
		t.Errorf("sandbox %s: DEL failed at %s and was not called again", first.id, first.delFailed.Format(time.StampMicro))
	}
	if second.add.Before(first.delOK) {
		t.Errorf("sandbox %s's ADD (%s) came before sandbox %s's successful DEL (%s)", second.id,
			second.add.Format(time.StampMicro), first.id, first.delOK.Format(time.StampMicro))
	}
	if _, err := os.Stat(first.netns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s of sandbox %s remains after its DEL succeeded", first.netns, first.id)
	}
}

// A setup that fails half-way removes what it made: here kuryr-controller
// refuses its flags after the control plane, the cloud and the nodes are up.
func TestFailedStartLeavesNothing(t *testing.T) {
	netnstest.RequireRoot(t)
	id := "f" + randomHex(3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	_, err := Start(ctx, Options{ID: id, Nodes: 1, ControllerArgs: []string{"--no-such-flag"}, Log: &log})
	if err == nil || !strings.Contains(err.Error(), "kuryr-controller exited while starting") {
		t.Fatalf("Start with a bad controller flag: %v, want kuryr-controller to exit while starting", err)
	}
	if !strings.Contains(log.String(), "node node-1") {
		t.Fatalf("setup failed before the nodes were made; the test proves nothing:\n%s", log.String())
	}
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "kuryr-aio-"+id+"-*"))
	left, lerr := leftovers(id, "", nil)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(matches) > 0 || left != "" {
		t.Errorf("left behind: %v %s", matches, left)
	}
	out, _ := exec.Command("pgrep", "-f", "kuryr-aio-"+id+"-").Output()
	if len(out) > 0 {
		t.Errorf("processes of environment %s still run: %s", id, out)
	}
}
