package aio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Names of the demo's objects.
const (
	DemoNamespace = "kuryr-demo"
	// MgmtNAD and DataPlaneNAD are the NetworkAttachmentDefinitions
	// CreateNADs makes.
	MgmtNAD      = "management"
	DataPlaneNAD = "data-plane"
)

// CreateNADs creates namespace (if missing) and in it the management NAD
// (the environment's MgmtDriver) and the data-plane NAD (nested-dpdk bound
// to uio_pci_generic).
func (e *Env) CreateNADs(ctx context.Context, namespace string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := e.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	nads := map[string]string{
		MgmtNAD: fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"kuryr-cni","driver":%q,"subnetId":%q}`,
			MgmtNAD, e.MgmtDriver, e.Networks.Management.ID),
		DataPlaneNAD: fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q,"dpdkDriver":"uio_pci_generic"}`,
			DataPlaneNAD, e.Networks.DataPlane.ID),
	}
	for name, conf := range nads {
		nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: conf}}
		if err := e.Client.Create(ctx, nad); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create NetworkAttachmentDefinition %s/%s: %w", namespace, name, err)
		}
	}
	return nil
}

// DPDKPod is a pod asking for the management network and a DPDK data-plane
// interface, with the hugepages and CPUs a DPDK application wants.
func DPDKPod(namespace, name string) *corev1.Pod {
	res := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("512Mi"),
		corev1.ResourceName("hugepages-2Mi"): resource.MustParse("256Mi"),
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": "dpdk-demo"},
			Annotations: map[string]string{v1alpha1.NetworksAnnotation: MgmtNAD + "," + DataPlaneNAD + "@dpdk0"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "testpmd", Image: "registry.example/dpdk-testpmd:22.11",
			Resources: corev1.ResourceRequirements{Requests: res, Limits: res},
		}}},
	}
}

// RunDemo creates the demo's NADs and pod, waits until its interfaces are
// all plugged (or timeout), and writes the table to w. It fails unless
// every interface is ready.
func (e *Env) RunDemo(ctx context.Context, w io.Writer, timeout time.Duration) error {
	if err := e.CreateNADs(ctx, DemoNamespace); err != nil {
		return err
	}
	demo := DPDKPod(DemoNamespace, "dpdk-app")
	if e.opts.DRA {
		if err := e.WriteResourceSlices(ctx, w); err != nil {
			return err
		}
		if err := e.CreateClaimTemplate(ctx, DemoNamespace); err != nil {
			return err
		}
		demo = DRADemoPod(DemoNamespace, "dpdk-app")
	}
	if e.opts.RealNodes {
		e.AdaptPod(demo)
		runDemoImage(demo)
	}
	pod, err := e.CreatePod(ctx, demo)
	if err != nil {
		return err
	}
	e.logf("created pod %s/%s asking for %s", pod.Namespace, pod.Name, pod.Annotations[v1alpha1.NetworksAnnotation])
	waitErr := e.WaitPodReady(ctx, pod.Namespace, pod.Name, timeout)
	if err := e.WriteTable(ctx, w, pod.Namespace, pod.Name); err != nil {
		return errors.Join(waitErr, err)
	}
	if waitErr != nil || !e.opts.RealNodes {
		return waitErr
	}
	if err := e.writeContainerView(ctx, w, pod); err != nil {
		return err
	}
	if e.opts.DRA {
		return e.writeClaimView(ctx, w, pod)
	}
	return nil
}

// PodReady says why the pod is not ready yet (nil when it is): it must be
// Running and every interface of its KuryrPod Plugged, DPDK ones bound.
func (e *Env) PodReady(ctx context.Context, namespace, name string) error {
	var pod corev1.Pod
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pod); err != nil {
		return err
	}
	if pod.Status.Phase != corev1.PodRunning {
		return fmt.Errorf("pod %s/%s is %s, not Running", namespace, name, pod.Status.Phase)
	}
	var kp v1alpha1.KuryrPod
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &kp); err != nil {
		return fmt.Errorf("KuryrPod %s/%s: %w", namespace, name, err)
	}
	if len(kp.Status.Interfaces) == 0 || len(kp.Status.Interfaces) != len(kp.Spec.Interfaces) {
		return fmt.Errorf("KuryrPod %s/%s: %d of %d interfaces in status", namespace, name, len(kp.Status.Interfaces), len(kp.Spec.Interfaces))
	}
	var errs []error
	for _, ifc := range kp.Status.Interfaces {
		switch {
		case ifc.State != v1alpha1.StatePlugged:
			errs = append(errs, fmt.Errorf("%s is %s %s", ifc.IfName, ifc.State, ifc.Message))
		case ifc.Driver == v1alpha1.DriverNestedDPDK && (ifc.PCIAddress == "" || ifc.BoundDriver == ""):
			errs = append(errs, fmt.Errorf("%s has no PCI address or bound driver", ifc.IfName))
		case ifc.Driver != v1alpha1.DriverNestedDPDK && len(ifc.IPs) == 0:
			errs = append(errs, fmt.Errorf("%s has no IP", ifc.IfName))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pod %s/%s: %w", namespace, name, errors.Join(errs...))
	}
	return nil
}

// WaitPodReady waits until PodReady says yes, or fails with its last answer.
func (e *Env) WaitPodReady(ctx context.Context, namespace, name string, timeout time.Duration) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = e.PodReady(ctx, namespace, name)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("pod %s/%s not ready after %s: %w", namespace, name, timeout, last)
	}
	return nil
}

// WriteTable writes one table per pod: its interfaces as the KuryrPod
// records them, and the time from creation to network-ready.
func (e *Env) WriteTable(ctx context.Context, w io.Writer, namespace string, names ...string) error {
	for _, name := range names {
		var pod corev1.Pod
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pod); err != nil {
			return err
		}
		ready := "not network-ready"
		if t, ok := e.Timing(pod.UID); ok && !t.AddDone.IsZero() {
			ready = fmt.Sprintf("network-ready in %s (pod created → CNI ADD returned; ADD took %s, %d attempt(s))",
				t.NetworkReady().Round(time.Millisecond), t.AddDone.Sub(t.AddStart).Round(time.Millisecond), t.Attempts)
		} else if c := PodCondition(&pod, corev1.PodReadyToStartContainers); c != nil && c.Status == corev1.ConditionTrue {
			// A real kubelet: its sandbox (network included) is ready;
			// the API's times have 1 s resolution.
			ready = fmt.Sprintf("sandbox and network ready %s after creation (the kubelet's PodReadyToStartContainers, 1 s resolution)",
				c.LastTransitionTime.Sub(pod.CreationTimestamp.Time))
		}
		fmt.Fprintf(w, "\npod %s/%s on %s, %s, %s\n", namespace, name, orDash(pod.Spec.NodeName), pod.Status.Phase, ready)
		var kp v1alpha1.KuryrPod
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &kp); err != nil {
			fmt.Fprintf(w, "  no KuryrPod: %v\n", err)
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  INTERFACE\tDRIVER\tMAC\tIPS\tVLAN\tPCI ADDRESS\tBOUND DRIVER\tSTATE")
		for _, i := range kp.Status.Interfaces {
			vlan := "-"
			if i.VLANID != 0 {
				vlan = strconv.Itoa(i.VLANID)
			}
			state := string(i.State)
			if i.Message != "" {
				state += " (" + i.Message + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.IfName, i.Driver, orDash(i.MAC), orDash(strings.Join(i.IPs, ",")),
				vlan, orDash(i.PCIAddress), orDash(i.BoundDriver), state)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// PodCondition is the pod's condition of type t, nil when it has none.
func PodCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}
