package openstack

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// faultyCloud is a simulated cloud where Neutron calls fail with fault f,
// and a Client on it.
func faultyCloud(t *testing.T, f cloudsim.Fault) (*cloudsim.Cloud, *Client, cloudsim.Network) {
	t.Helper()
	sim := startSim(t, cloudsim.Options{Seed: 42})
	n, _, err := sim.SeedNetwork("pods", "10.10.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	cfg := passwordConfig(sim)
	cfg.RequestTimeout = 2 * time.Second
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sim.SetFault("neutron.ports.*", f)
	return sim, c, n
}

var loopBackoff = Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond, Factor: 2, Attempts: 25}

// createIdempotent looks the port up by its tag before creating it, so a
// create whose answer was lost is not repeated.
func createIdempotent(ctx context.Context, c *Client, spec PortSpec) (Port, error) {
	var p Port
	err := Retry(ctx, loopBackoff, func(ctx context.Context) error {
		found, err := c.ListPorts(ctx, PortFilter{Tags: spec.Tags})
		if err != nil {
			return err
		}
		if len(found) > 0 {
			p = found[0]
			return nil
		}
		p, err = c.CreatePort(ctx, spec)
		return err
	})
	return p, err
}

// TestFaultInjectionLoop: with 30 % of port calls failing with 5xx, both
// before the cloud acts and after it (a lost answer), a create-then-delete
// loop through Retry leaves no port behind.
func TestFaultInjectionLoop(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]cloudsim.Fault{
		"500 before acting": {Rate: 0.3, Status: 500},
		"503 after acting":  {Rate: 0.3, Status: 503, After: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sim, c, n := faultyCloud(t, f)
			ctx := context.Background()
			for i := range 40 {
				p, err := createIdempotent(ctx, c, PortSpec{NetworkID: n.ID, Tags: []string{fmt.Sprint("loop-", i)}})
				if err != nil {
					t.Fatalf("create %d: %v", i, err)
				}
				if err := Retry(ctx, loopBackoff, func(ctx context.Context) error { return c.DeletePort(ctx, p.ID) }); err != nil {
					t.Fatalf("delete %d: %v", i, err)
				}
			}
			if left := sim.Ports(); len(left) != 0 {
				t.Errorf("%d ports left in the cloud", len(left))
			}
			if sim.FaultCount("neutron.ports.create") == 0 || sim.FaultCount("neutron.ports.delete") == 0 {
				t.Errorf("no fault was injected: %v", sim.Counts())
			}
		})
	}
}

// TestFaultInjectionNaiveLeaks shows what the loop above guards against:
// retrying a create whose answer was lost, without looking up first,
// leaks ports. (If this stops leaking, the fault injection is broken.)
func TestFaultInjectionNaiveLeaks(t *testing.T) {
	t.Parallel()
	sim, c, n := faultyCloud(t, cloudsim.Fault{Rate: 0.3, Status: 503, After: true})
	ctx := context.Background()
	for range 40 {
		var p Port
		err := Retry(ctx, loopBackoff, func(ctx context.Context) error {
			var err error
			p, err = c.CreatePort(ctx, PortSpec{NetworkID: n.ID})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := Retry(ctx, loopBackoff, func(ctx context.Context) error { return c.DeletePort(ctx, p.ID) }); err != nil {
			t.Fatal(err)
		}
	}
	if len(sim.Ports()) == 0 {
		t.Error("no port leaked although creates were answered 503 after acting")
	}
}

// TestTagsWithoutTagOnCreate: against a Neutron that refuses tags in create
// bodies, ports still end up tagged (create, then tag).
func TestTagsWithoutTagOnCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim := startSim(t, cloudsim.Options{NoAuth: true, NoTagsOnCreate: true})
	n, _, err := sim.SeedNetwork("pods", "10.10.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Config{NeutronURL: sim.NeutronURL(), ProjectID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.CreatePort(ctx, PortSpec{NetworkID: n.ID, Tags: []string{"a", "b"}})
	if err != nil || len(p.Tags) != 2 {
		t.Fatalf("CreatePort = %+v, %v", p, err)
	}
	ps, err := c.CreatePorts(ctx, []PortSpec{{NetworkID: n.ID, Tags: []string{"c"}}, {NetworkID: n.ID, Tags: []string{"c"}}})
	if err != nil || len(ps) != 2 {
		t.Fatalf("CreatePorts = %+v, %v", ps, err)
	}
	if got, err := c.ListPorts(ctx, PortFilter{TagsAny: []string{"a", "c"}}); err != nil || len(got) != 3 {
		t.Errorf("tagged ports: %d, %v", len(got), err)
	}
	if sim.Count("neutron.ports.tags.replace") != 3 || len(sim.Ports()) != 3 {
		t.Errorf("counts %v, %d ports", sim.Counts(), len(sim.Ports()))
	}
}

// TestConcurrentPorts: parallel creates get distinct addresses and MACs,
// and the cloud counts every call.
func TestConcurrentPorts(t *testing.T) {
	t.Parallel()
	sim, c, n := faultyCloud(t, cloudsim.Fault{})
	ctx := context.Background()
	const workers, each = 8, 10
	type result struct {
		ports []Port
		err   error
	}
	results := make(chan result, workers)
	for w := range workers {
		go func() {
			var r result
			for i := range each {
				p, err := c.CreatePort(ctx, PortSpec{NetworkID: n.ID, Tags: []string{fmt.Sprint("w", w, "-", i)}})
				if err != nil {
					r.err = err
					break
				}
				r.ports = append(r.ports, p)
			}
			results <- r
		}()
	}
	macs, ips := map[string]bool{}, map[string]bool{}
	for range workers {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		for _, p := range r.ports {
			macs[p.MACAddress], ips[p.FixedIPs[0].IPAddress] = true, true
		}
	}
	if len(macs) != workers*each || len(ips) != workers*each {
		t.Errorf("%d MACs and %d IPs for %d ports", len(macs), len(ips), workers*each)
	}
	if got := sim.Count("neutron.ports.create"); got != workers*each {
		t.Errorf("counted %d creates, want %d", got, workers*each)
	}
}

// TestUnanswered: a create that got no answer (the client's timeout) or a
// gateway's 504 may still have made its port, and says so; a 503 or 500
// from the cloud, a 404 and an error of another kind do not.
func TestUnanswered(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		f    cloudsim.Fault
		want bool
	}{
		"no answer":  {cloudsim.Fault{Rate: 1, Hang: true, HangFor: 5 * time.Second}, true},
		"504 after":  {cloudsim.Fault{Rate: 1, Status: 504, After: true}, true},
		"503 before": {cloudsim.Fault{Rate: 1, Status: 503}, false},
		"500 before": {cloudsim.Fault{Rate: 1, Status: 500}, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sim, _, n := faultyCloud(t, cloudsim.Fault{})
			cfg := passwordConfig(sim)
			cfg.RequestTimeout = 300 * time.Millisecond
			cl, err := New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			sim.SetFault("neutron.ports.create", c.f)
			_, err = cl.CreatePort(context.Background(), PortSpec{NetworkID: n.ID, Name: "p"})
			if err == nil {
				t.Fatal("the create did not fail")
			}
			if got := Unanswered(err); got != c.want {
				t.Errorf("Unanswered(%v) = %v, want %v", err, got, c.want)
			}
		})
	}
	if Unanswered(fmt.Errorf("not the cloud's")) {
		t.Error("an error not from a cloud call is Unanswered")
	}
	_, cl, _ := faultyCloud(t, cloudsim.Fault{})
	if _, err := cl.GetPort(context.Background(), "no-such-port"); err == nil || Unanswered(err) {
		t.Errorf("a 404 (%v) is Unanswered", err)
	}
}
