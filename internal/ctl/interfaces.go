package ctl

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// WriteInterfaces prints one line per interface of the KuryrPods: pod,
// node, interface, driver, state, MAC, IPs, VLAN ID, PCI address and bound
// driver.
func WriteInterfaces(w io.Writer, pods []v1alpha1.KuryrPod) error {
	sort.Slice(pods, func(i, j int) bool {
		return pods[i].Namespace+"/"+pods[i].Name < pods[j].Namespace+"/"+pods[j].Name
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tIF\tDRIVER\tSTATE\tMAC\tIPS\tVLAN\tPCI\tBOUND")
	for _, kp := range pods {
		for _, s := range kp.Status.Interfaces {
			vlan := "-"
			if s.VLANID != 0 {
				vlan = fmt.Sprint(s.VLANID)
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", kp.Namespace, kp.Name, kp.Spec.NodeName,
				s.IfName, s.Driver, s.State, dash(s.MAC), dash(strings.Join(s.IPs, ",")), vlan, dash(s.PCIAddress), dash(s.BoundDriver))
		}
		if len(kp.Status.Interfaces) == 0 {
			fmt.Fprintf(tw, "%s/%s\t%s\t-\t-\t%s\t-\t-\t-\t-\t-\n", kp.Namespace, kp.Name, kp.Spec.NodeName, dash(kp.Status.Summary))
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
