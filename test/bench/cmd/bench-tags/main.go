// Command bench-tags measures, against a real neutron-server, what the two
// ways of writing a pooled port's owner tags cost Neutron: one
// PUT /v2.0/ports/{id}/tags replacing every tag (what the controller's
// pools do: the pool's tags plus kuryr-pod and kuryr-ifname), or
// PUT /v2.0/ports/{id}/tags/{tag} adding one tag, alone and twice in a row
// (the owner record is two tags). N ports are tagged at once, as N pods
// taking pooled ports would; each variant runs --rounds times per N. The
// server's own time per request comes from neutron-server's access log
// (--neutron-log), the client's from the wall clock.
//
//	hack/neutron/start-mariadb.sh -p PORT -d STATE -w 2
//	bench-tags --neutron-url http://127.0.0.1:PORT --neutron-log STATE/neutron-server.log
//	hack/neutron/stop-mariadb.sh -d STATE
//
// hack/bench/neutron-tags.sh does all three. See docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/bench"
)

func main() { os.Exit(run()) }

// variant is one way of recording a port's owner: tag writes each pod
// makes, in order.
type variant struct {
	name string
	// ops are the operations it sends, as the access log names them.
	ops []string
	// writes returns the requests (method, path, body) one pod makes.
	writes func(portID string, pool []string, uid string) []write
}

type write struct {
	path string
	body any
}

// The tags of a pooled nested-vlan port (internal/controller/tags.go),
// with made-up values of the same lengths.
var poolTags = []string{"kuryr-cluster=bench", "kuryr-cluster-uid=8b1f3f0e-4d2c-4a57-9d8e-1c1f0b2a3c4d",
	"kuryr-driver=nested-vlan", "kuryr-tags=v1", "kuryr-pool=node-1", "kuryr-trunk=0d8c7e4e-7a35-4bd2-a3a4-0b7e3c7a1a11"}

const (
	opReplace = "PUT /v2.0/ports/{id}/tags"
	opAdd     = "PUT /v2.0/ports/{id}/tags/{tag}"
)

var variants = []variant{
	{"replace all (PUT /tags, 8 tags)", []string{opReplace}, func(id string, pool []string, uid string) []write {
		return []write{{"/ports/" + id + "/tags", map[string]any{"tags": append(slices.Clone(pool), "kuryr-pod="+uid, "kuryr-ifname=eth0")}}}
	}},
	{"add one (PUT /tags/{tag})", []string{opAdd}, func(id string, _ []string, uid string) []write {
		return []write{{"/ports/" + id + "/tags/kuryr-pod=" + uid, nil}}
	}},
	{"add two in a row (2× PUT /tags/{tag})", []string{opAdd}, func(id string, _ []string, uid string) []write {
		return []write{{"/ports/" + id + "/tags/kuryr-pod=" + uid, nil}, {"/ports/" + id + "/tags/kuryr-ifname=eth0", nil}}
	}},
}

func run() int {
	url := flag.String("neutron-url", "", "neutron-server endpoint without /v2.0 (required)")
	logPath := flag.String("neutron-log", "", "neutron-server's log file, for its access lines (required)")
	countsFlag := flag.String("counts", "1,9,50", "ports tagged at once, comma-separated")
	rounds := flag.Int("rounds", 4, "rounds per variant and count")
	flag.Parse()
	if *url == "" || *logPath == "" {
		fmt.Fprintln(os.Stderr, "bench-tags: --neutron-url and --neutron-log are required")
		return 2
	}
	var counts []int
	for _, s := range strings.Split(*countsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench-tags: bad --counts entry %q\n", s)
			return 2
		}
		counts = append(counts, n)
	}
	if err := measure(context.Background(), *url, *logPath, counts, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench-tags:", err)
		return 1
	}
	return 0
}

// measure makes a pod network and max(counts) ports with the pool's tags,
// runs every variant for every count and prints one line per pair, then
// deletes what it made.
func measure(ctx context.Context, url, logPath string, counts []int, rounds int) error {
	n := &bench.Neutron{URL: url, ProjectID: "kuryr-bench", HTTP: &http.Client{
		Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}}
	topo, err := n.Setup(ctx, "bench-tags", "10.70.0.0/24", "10.71.0.0/20", "b3c5ad52-3b70-4f55-9f86-2b7d3e0e2d11", "bench-tags-host")
	if err != nil {
		return err
	}
	most := slices.Max(counts)
	specs := make([]map[string]any, most)
	for i := range specs {
		specs[i] = map[string]any{"network_id": topo.PodNetworkID, "project_id": n.ProjectID,
			"device_owner": "compute:kuryr", "tags": poolTags}
	}
	var made struct {
		Ports []struct {
			ID string `json:"id"`
		} `json:"ports"`
	}
	if err := n.Do(ctx, http.MethodPost, "/ports", map[string]any{"ports": specs}, &made); err != nil {
		return fmt.Errorf("create %d ports: %w", most, err)
	}
	ids := make([]string, len(made.Ports))
	for i, p := range made.Ports {
		ids[i] = p.ID
	}
	defer func() {
		for _, id := range ids {
			if err := n.Do(ctx, http.MethodDelete, "/ports/"+id, nil, nil); err != nil {
				fmt.Fprintln(os.Stderr, "bench-tags: cleanup:", err)
			}
		}
	}()
	fmt.Printf("| ports tagged at once | variant | requests | server time per request, mean | server time per pod, mean | client time per pod, mean / max |\n")
	fmt.Printf("| ---: | --- | ---: | ---: | ---: | ---: |\n")
	seq := 0
	for _, c := range counts {
		for _, v := range variants {
			var busy time.Duration
			var requests int
			var took []time.Duration
			for range rounds {
				// Back to the pool's tags, outside the measured window.
				for _, id := range ids[:c] {
					if err := n.Do(ctx, http.MethodPut, "/ports/"+id+"/tags", map[string]any{"tags": poolTags}, nil); err != nil {
						return err
					}
				}
				// neutron-server logs a request after answering it: the
				// resets' lines must be in before the mark.
				time.Sleep(300 * time.Millisecond)
				mark, err := bench.MarkLog(logPath)
				if err != nil {
					return err
				}
				var mu sync.Mutex
				var wg sync.WaitGroup
				var errs []error
				for _, id := range ids[:c] {
					seq++
					uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", seq)
					wg.Go(func() {
						start := time.Now()
						var err error
						for _, w := range v.writes(id, poolTags, uid) {
							if err = n.Do(ctx, http.MethodPut, w.path, w.body, nil); err != nil {
								break
							}
						}
						mu.Lock()
						defer mu.Unlock()
						took = append(took, time.Since(start))
						errs = append(errs, err)
					})
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					return err
				}
				time.Sleep(300 * time.Millisecond)
				reqs, err := bench.ReadRequests(logPath, mark)
				if err != nil {
					return err
				}
				for op, s := range bench.ByOp(reqs) {
					if slices.Contains(v.ops, op) {
						busy += s.Busy
						requests += s.Count
					}
				}
			}
			pods := c * rounds
			var sum time.Duration
			for _, d := range took {
				sum += d
			}
			fmt.Printf("| %d | %s | %d | %s | %s | %s / %s |\n", c, v.name, requests, ms(busy/time.Duration(max(requests, 1))),
				ms(busy/time.Duration(pods)), ms(sum/time.Duration(pods)), ms(slices.Max(took)))
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
