package aio

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/dra"
)

// With Options.DRA, kuryr-controller keeps a pool of pre-attached DPDK
// ports on every node (pools.nestedDPDK, declared by
// pools.nestedDPDKNetworks on the data-plane subnet with the environment's
// security group, so made at start), the DRA driver in each node's
// kuryr-daemon publishes them as the node's ResourceSlice pool, and the
// scheduler allocates them to ResourceClaims of DeviceClass
// dpdk.kuryr-dpdk.io (deploy/kuryr-dpdk/dra.yaml).

// DRAPoolMax is the size of a node's DPDK pool: its min, max and batch.
const DRAPoolMax = 2

// DRAClass is the DeviceClass of any DPDK port, deploy/kuryr-dpdk/dra.yaml's.
const DRAClass = dra.DriverName

// makeDPDKPools waits until every node publishes its DPDK pool's
// DRAPoolMax devices: kuryr-controller makes the declared pools at start
// (docs/controller.md), Nova attaches their ports, and each node's DRA
// driver publishes them.
func (e *Env) makeDPDKPools(ctx context.Context) error {
	start := time.Now()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, n := range e.Nodes {
			devs, err := e.DRADevices(ctx, n.Name)
			if err != nil || len(devs) < DRAPoolMax {
				last = fmt.Sprintf("node %s publishes %d devices of %d (%v)", n.Name, len(devs), DRAPoolMax, err)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("DPDK pools not published: %s: %w", last, err)
	}
	e.logf("DPDK pools on %d nodes made and published through DRA in %.1f s", len(e.Nodes), time.Since(start).Seconds())
	return nil
}

// DRADevices lists the devices node publishes through the DRA driver.
func (e *Env) DRADevices(ctx context.Context, node string) ([]resourceapi.Device, error) {
	slices, err := e.Clientset.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{
		FieldSelector: "spec.driver=" + dra.DriverName + ",spec.nodeName=" + node})
	if err != nil {
		return nil, err
	}
	var out []resourceapi.Device
	for _, s := range slices.Items {
		out = append(out, s.Spec.Devices...)
	}
	return out, nil
}

// WriteResourceSlices writes `kubectl get resourceslices` and, per node,
// the devices its slices publish with their attributes.
func (e *Env) WriteResourceSlices(ctx context.Context, w io.Writer) error {
	out, err := exec.CommandContext(ctx, e.Kubectl(), "--kubeconfig", e.Kubeconfig(), "get", "resourceslices").CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl get resourceslices: %w\n%s", err, out)
	}
	fmt.Fprintf(w, "\nkubectl get resourceslices:\n")
	indent(w, string(out))
	fmt.Fprintf(w, "\nthe devices in them (driver %s, one pool per node: the node's pre-attached DPDK ports):\n", dra.DriverName)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tDEVICE\tPCI ADDRESS\tMAC\tDPDK DRIVERS\tIOMMU\tNETWORK")
	for _, n := range e.Nodes {
		devs, err := e.DRADevices(ctx, n.Name)
		if err != nil {
			return err
		}
		for _, d := range devs {
			attr := func(name string) string {
				a, ok := d.Attributes[resourceapi.QualifiedName(name)]
				switch {
				case !ok:
					return "-"
				case a.StringValue != nil:
					return *a.StringValue
				case a.BoolValue != nil:
					return fmt.Sprint(*a.BoolValue)
				case a.IntValue != nil:
					return fmt.Sprint(*a.IntValue)
				}
				return "?"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, d.Name, attr("pciAddress"), attr("mac"),
				attr("dpdkDrivers"), attr("iommu"), attr("networkID"))
		}
	}
	return tw.Flush()
}

func indent(w io.Writer, s string) {
	for _, line := range strings.SplitAfter(s, "\n") {
		if line != "" {
			fmt.Fprint(w, "  "+line)
		}
	}
}

// DemoClaimTemplate is the ResourceClaimTemplate of the DRA demo: one DPDK
// port of class DRAClass per pod.
const DemoClaimTemplate = "dpdk-port"

// CreateClaimTemplate creates, in namespace, the ResourceClaimTemplate
// DemoClaimTemplate (one device of DRAClass, request "port").
func (e *Env) CreateClaimTemplate(ctx context.Context, namespace string) error {
	t := &resourceapi.ResourceClaimTemplate{ObjectMeta: metav1.ObjectMeta{Name: DemoClaimTemplate, Namespace: namespace},
		Spec: resourceapi.ResourceClaimTemplateSpec{Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
			Requests: []resourceapi.DeviceRequest{{Name: "port", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: DRAClass}}},
		}}}}
	_, err := e.Clientset.ResourceV1().ResourceClaimTemplates(namespace).Create(ctx, t, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ResourceClaimTemplate %s/%s: %w", namespace, DemoClaimTemplate, err)
	}
	return nil
}

// ClaimPort makes every container of pod use claim: a pod-level claim named
// "port" from the ResourceClaimTemplate template, or of the ResourceClaim
// claimName when template is "".
func ClaimPort(pod *corev1.Pod, template, claimName string) {
	rc := corev1.PodResourceClaim{Name: "port"}
	if template != "" {
		rc.ResourceClaimTemplateName = &template
	} else {
		rc.ResourceClaimName = &claimName
	}
	pod.Spec.ResourceClaims = append(pod.Spec.ResourceClaims, rc)
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		c.Resources.Claims = append(c.Resources.Claims, corev1.ResourceClaim{Name: "port"})
	}
}

// DRADemoPod is the DRA demo's pod: the management network from the
// networks annotation, its DPDK port from a claim of DemoClaimTemplate.
func DRADemoPod(namespace, name string) *corev1.Pod {
	pod := DPDKPod(namespace, name)
	pod.Annotations[v1alpha1.NetworksAnnotation] = MgmtNAD
	ClaimPort(pod, DemoClaimTemplate, "")
	return pod
}

// PodClaim returns the ResourceClaim of the pod's claim "port" (its
// status names it once made from a template).
func (e *Env) PodClaim(ctx context.Context, pod *corev1.Pod) (*resourceapi.ResourceClaim, error) {
	p, err := e.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	name := ""
	for _, rc := range p.Spec.ResourceClaims {
		if rc.Name == "port" && rc.ResourceClaimName != nil {
			name = *rc.ResourceClaimName
		}
	}
	if i := slices.IndexFunc(p.Status.ResourceClaimStatuses, func(s corev1.PodResourceClaimStatus) bool { return s.Name == "port" }); i >= 0 && p.Status.ResourceClaimStatuses[i].ResourceClaimName != nil {
		name = *p.Status.ResourceClaimStatuses[i].ResourceClaimName
	}
	if name == "" {
		return nil, fmt.Errorf("pod %s/%s has no ResourceClaim for its claim \"port\" yet", pod.Namespace, pod.Name)
	}
	return e.Clientset.ResourceV1().ResourceClaims(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
}

// writeClaimView writes the demo pod's claim (its allocation and the
// status the DRA driver wrote) and what its container sees of the device:
// /dev, the variable naming the PCI address and the device-info file the
// CDI spec mounts.
func (e *Env) writeClaimView(ctx context.Context, w io.Writer, pod *corev1.Pod) error {
	claim, err := e.PodClaim(ctx, pod)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nResourceClaim %s/%s (from template %s):\n", claim.Namespace, claim.Name, DemoClaimTemplate)
	if a := claim.Status.Allocation; a != nil {
		for _, r := range a.Devices.Results {
			fmt.Fprintf(w, "  allocated: driver %s, pool %s, device %s (request %s)\n", r.Driver, r.Pool, r.Device, r.Request)
		}
	}
	for _, d := range claim.Status.Devices {
		hw := ""
		if d.NetworkData != nil {
			hw = d.NetworkData.HardwareAddress
		}
		data := ""
		if d.Data != nil {
			data = string(d.Data.Raw)
		}
		fmt.Fprintf(w, "  status: device %s, hardwareAddress %s, data %s\n", d.Device, hw, data)
		for _, c := range d.Conditions {
			fmt.Fprintf(w, "    %s=%s (%s): %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	return e.writeExec(ctx, w, pod, `ls -l /dev | grep -v -e ' -> ' -e '^total'; env | grep ^PCIDEVICE_; for f in /var/run/k8s.cni.cncf.io/devinfo/dp/*; do echo "device-info file $f:"; cat "$f"; echo; done`)
}

// writeExec writes what script (sh -c in the pod's container) printed,
// under the command that printed it.
func (e *Env) writeExec(ctx context.Context, w io.Writer, pod *corev1.Pod, script string) error {
	out, err := e.Exec(ctx, pod, script)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\ninside the container (kubectl exec %s -- sh -c '%s'):\n", pod.Name, script)
	indent(w, out)
	return nil
}

// Exec runs script with sh -c in the pod's first container (kubectl exec)
// and returns its output.
func (e *Env) Exec(ctx context.Context, pod *corev1.Pod, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.Kubectl(), "--kubeconfig", e.Kubeconfig(), "exec", "-n", pod.Namespace, pod.Name,
		"-c", pod.Spec.Containers[0].Name, "--", "/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kubectl exec %s/%s -- sh -c %q: %w\n%s", pod.Namespace, pod.Name, script, err, out)
	}
	return string(out), nil
}
