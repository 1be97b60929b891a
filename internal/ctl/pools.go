package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Pool is one node's pool as kuryrctl pools prints it (-o json).
type Pool struct {
	Node string `json:"node"`
	v1alpha1.NodePool
}

// Pools flattens the pools the KuryrNodes record, ordered by node.
func Pools(nodes []v1alpha1.KuryrNode) []Pool {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	out := []Pool{}
	for _, kn := range nodes {
		for _, p := range kn.Status.Pools {
			out = append(out, Pool{Node: kn.Name, NodePool: p})
		}
	}
	return out
}

// WritePools prints the pools as a table (one line per node, driver,
// subnet and security groups: ready, warming, in use, target, max, and the
// last refill error) or, with format "json", as a JSON list.
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
	return tw.Flush()
}
