package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Pool is one node's pool as kuryrctl pools prints it (-o json).
type Pool struct {
	Node string `json:"node"`
	v1alpha1.NodePool
	// Devices are a nested-dpdk pool's pre-attached ports (the node's
	// status.dpdkDevices of the pool's subnet and security groups; a
	// pod's own ports, Unpooled, are in no pool).
	Devices []v1alpha1.DPDKDevice `json:"devices,omitempty"`
}

// Pools flattens the pools the KuryrNodes record, ordered by node, each
// nested-dpdk pool with its devices.
func Pools(nodes []v1alpha1.KuryrNode) []Pool {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	out := []Pool{}
	for _, kn := range nodes {
		for _, p := range kn.Status.Pools {
			pl := Pool{Node: kn.Name, NodePool: p}
			if p.Driver == v1alpha1.DriverNestedDPDK {
				for _, d := range kn.Status.DPDKDevices {
					if !d.Unpooled && d.SubnetID == p.SubnetID && slices.Equal(d.SecurityGroups, p.SecurityGroups) {
						pl.Devices = append(pl.Devices, d)
					}
				}
			}
			out = append(out, pl)
		}
	}
	return out
}

// WritePools prints the pools as a table (one line per node, driver,
// subnet and security groups: ready, warming, in use, target, max, and the
// last refill error), followed by a table of the nested-dpdk pools'
// devices (node, port, MAC, state, owner) if there are any; or, with
// format "json", as a JSON list.
func WritePools(w io.Writer, pools []Pool, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(pools)
	case "", "table":
	default:
		return fmt.Errorf("output format %q: want table or json", format)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tDRIVER\tSUBNET\tSECURITY GROUPS\tREADY\tWARMING\tIN USE\tTARGET\tMAX\tLAST ERROR")
	for _, p := range pools {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Node, p.Driver, p.SubnetID,
			dash(strings.Join(p.SecurityGroups, ",")), p.Ready, p.Warming, p.InUse, p.Target, p.Max, dash(p.LastError))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !slices.ContainsFunc(pools, func(p Pool) bool { return len(p.Devices) > 0 }) {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "NODE\tDPDK PORT\tMAC\tSUBNET\tSTATE\tOWNER")
	for _, p := range pools {
		for _, d := range p.Devices {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Node, d.PortID, d.MAC, d.SubnetID, d.State, dash(d.Owner))
		}
	}
	return tw.Flush()
}
