package aio

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
)

// demoDevInfoDir is where the demo container sees the node's NPWG
// device-info directory (a read-only hostPath).
const demoDevInfoDir = "/" + binding.DeviceInfoCNIDir

// runDemoImage makes the demo pod's container DemoImage, sleeping, with the
// node's device-info directory mounted read-only, so that `kubectl exec`
// can show its interfaces and the device-info file of its DPDK device. The
// hostPath shows every device-info file of the node, not only the pod's
// own: a demo's shortcut (a DRA claim hands a container only its device).
func runDemoImage(pod *corev1.Pod) {
	c := &pod.Spec.Containers[0]
	c.Image, c.Command = DemoImage, []string{"/bin/sleep", "2147483647"}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "devinfo", MountPath: demoDevInfoDir, ReadOnly: true})
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "devinfo",
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: demoDevInfoDir, Type: &dirOrCreate}}})
	grace := int64(1)
	pod.Spec.TerminationGracePeriodSeconds = &grace
}

// writeContainerView writes what the demo pod's own container sees, through
// kubectl exec: its interfaces (`ip addr`) and the device-info files of
// its DPDK interfaces (the kernel has no netdev for a device bound to a
// DPDK driver; the file names its PCI address).
func (e *Env) writeContainerView(ctx context.Context, w io.Writer, pod *corev1.Pod) error {
	dpdk, err := e.dpdkIfNames(ctx, pod)
	if err != nil {
		return err
	}
	show := "ip addr"
	for _, ifName := range dpdk {
		show += fmt.Sprintf(`; for f in %s/*_%s; do echo; echo "device-info file $f:"; cat "$f"; echo; done`, demoDevInfoDir, ifName)
	}
	return e.writeExec(ctx, w, pod, show)
}

// dpdkIfNames lists the pod's nested-dpdk interfaces, as its KuryrPod
// records them.
func (e *Env) dpdkIfNames(ctx context.Context, pod *corev1.Pod) ([]string, error) {
	var kp v1alpha1.KuryrPod
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(pod), &kp); err != nil {
		return nil, fmt.Errorf("KuryrPod of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	var out []string
	for _, i := range kp.Status.Interfaces {
		if i.Driver == v1alpha1.DriverNestedDPDK {
			out = append(out, i.IfName)
		}
	}
	return out, nil
}
