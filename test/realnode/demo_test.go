package realnode

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// TestDemoShowsTheContainersOwnView runs the demo as make demo does on a
// real node: its table lists dpdk0 (nested-dpdk, bound to
// uio_pci_generic) and net1 (the management driver) and says when the
// sandbox's network was ready; its pod's container (the busybox demo image) shows, through
// kubectl exec, its own eth0 and net1 with the addresses its KuryrPod
// records, and the device-info file naming the PCI address its dpdk0 was
// bound at; deleting the demo pod then leaves nothing behind (the other
// tests' leak checks count the whole environment).
func TestDemoShowsTheContainersOwnView(t *testing.T) {
	testenv.RequireNodeBins(t)
	if env == nil {
		t.Fatal("the environment did not start (see TestMain's output)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() { // on a failure below: the other tests' leak checks count it
		_ = env.Clientset.CoreV1().Pods(aio.DemoNamespace).Delete(context.Background(), "dpdk-app", metav1.DeleteOptions{})
	})
	var out bytes.Buffer
	if err := env.RunDemo(ctx, &out, 2*time.Minute); err != nil {
		t.Fatalf("RunDemo: %v\n%s", err, out.String())
	}
	t.Logf("demo output:\n%s", out.String())
	table, view, ok := strings.Cut(out.String(), "inside the container")
	for _, want := range []string{"dpdk0", "nested-dpdk", "uio_pci_generic", "net1", string(env.MgmtDriver), "network ready"} {
		if !strings.Contains(table, want) {
			t.Errorf("demo table lacks %q", want)
		}
	}
	if !ok {
		t.Fatal("the demo printed no view from inside the container")
	}
	var kp v1alpha1.KuryrPod
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: aio.DemoNamespace, Name: "dpdk-app"}, &kp); err != nil {
		t.Fatal(err)
	}
	dpdk := 0
	for _, i := range kp.Status.Interfaces {
		switch {
		case i.Driver == v1alpha1.DriverNestedDPDK:
			dpdk++
			if i.PCIAddress == "" || !strings.Contains(view, `"pci-address":"`+i.PCIAddress+`"`) {
				t.Errorf("the container's view has no device-info file naming %s's PCI address %q", i.IfName, i.PCIAddress)
			}
		default:
			for _, ip := range i.IPs {
				if !strings.Contains(view, i.IfName) || !strings.Contains(view, "inet "+ip) {
					t.Errorf("the container's ip addr shows no %s with %s", i.IfName, ip)
				}
			}
		}
	}
	if dpdk == 0 || len(kp.Status.Interfaces) < 2 {
		t.Errorf("KuryrPod has %d interfaces (%d DPDK), want eth0, net1 and dpdk0", len(kp.Status.Interfaces), dpdk)
	}
	pod, err := env.Clientset.CoreV1().Pods(aio.DemoNamespace).Get(ctx, "dpdk-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deleteAndRequireNoLeaks(t, ctx, pod)
}
