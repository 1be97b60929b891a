package dra

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	dracel "k8s.io/dynamic-resource-allocation/cel"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestDeviceClassesAreAccepted: the API server takes the DeviceClass of
// deploy/kuryr-dpdk/dra.yaml and the per-network example of
// deploy/examples/dra-network.yaml (its CEL selectors compile, its
// extended resource names are valid), with the example's claim template and
// pod; the classes select this driver's devices and map the extended
// resources.
func TestDeviceClassesAreAccepted(t *testing.T) {
	ctx := context.Background()
	if _, err := testenv.Apply(ctx, env.Config, "../../deploy/kuryr-dpdk/rbac.yaml", "../../deploy/kuryr-dpdk/dra.yaml",
		"../../deploy/examples/dra-network.yaml"); err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(env.Config)
	must(t, err)
	for name, ext := range map[string]string{DriverName: ExtendedResourceName, "dpdk-net-a.kuryr-dpdk.io": DriverName + "/net-a"} {
		dc, err := kube.ResourceV1().DeviceClasses().Get(ctx, name, metav1.GetOptions{})
		must(t, err)
		if dc.Spec.ExtendedResourceName == nil || *dc.Spec.ExtendedResourceName != ext {
			t.Errorf("DeviceClass %s: extendedResourceName %v, want %s", name, dc.Spec.ExtendedResourceName, ext)
		}
		if len(dc.Spec.Selectors) != 1 || dc.Spec.Selectors[0].CEL == nil {
			t.Errorf("DeviceClass %s: selectors %+v, want one CEL selector", name, dc.Spec.Selectors)
		}
	}
	if _, err := kube.ResourceV1().ResourceClaimTemplates("default").Get(ctx, "dpdk-net-a", metav1.GetOptions{}); err != nil {
		t.Errorf("the example's claim template: %v", err)
	}
}

// TestClassesSelectPublishedDevices: the deployed classes' CEL selectors,
// evaluated as the scheduler does on devices as the driver publishes them,
// select every port for dpdk.kuryr-dpdk.io and only the example network's
// for the per-network class.
func TestClassesSelectPublishedDevices(t *testing.T) {
	ctx := context.Background()
	if _, err := testenv.Apply(ctx, env.Config, "../../deploy/kuryr-dpdk/dra.yaml", "../../deploy/examples/dra-network.yaml"); err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(env.Config)
	must(t, err)
	s := startSim(t)
	must(t, s.AddVirtioNet(pciA, macA))
	must(t, s.AddVirtioNet(pciB, macB))
	onNet, offNet := dev(portA, macA, v1alpha1.DPDKDeviceReady, ""), dev(portB, macB, v1alpha1.DPDKDeviceReady, "")
	onNet.NetworkID = "NETWORK_ID" // the example's placeholder
	devices, _, err := Devices(&v1alpha1.KuryrNode{Status: v1alpha1.KuryrNodeStatus{DPDKDevices: []v1alpha1.DPDKDevice{onNet, offNet}}}, pci.New(s.Root()), nil)
	if err != nil || len(devices) != 2 {
		t.Fatalf("devices %v, %v", names(devices), err)
	}
	for class, want := range map[string][]string{
		DriverName:                 {DeviceName(portA), DeviceName(portB)},
		"dpdk-net-a.kuryr-dpdk.io": {DeviceName(portA)},
	} {
		dc, err := kube.ResourceV1().DeviceClasses().Get(ctx, class, metav1.GetOptions{})
		must(t, err)
		var got []string
		for _, d := range devices {
			ok := true
			for _, sel := range dc.Spec.Selectors {
				res := dracel.GetCompiler(dracel.Features{}).CompileCELExpression(sel.CEL.Expression, dracel.Options{})
				if res.Error != nil {
					t.Fatalf("class %s: %v", class, res.Error)
				}
				m, _, err := res.DeviceMatches(ctx, dracel.Device{Driver: DriverName, Attributes: d.Attributes})
				must(t, err)
				ok = ok && m
			}
			if ok {
				got = append(got, d.Name)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("class %s selects %v, want %v", class, got, want)
		}
	}
}
