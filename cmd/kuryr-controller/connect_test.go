package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// fastBackoff is connectBackoff's shape with short waits.
var fastBackoff = openstack.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Factor: 2, Attempts: 100}

func startCloud(t *testing.T) *cloudsim.Cloud {
	t.Helper()
	sim := cloudsim.New(cloudsim.Options{Seed: 1})
	if err := sim.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func cloudConfig(sim *cloudsim.Cloud, password string) openstack.Config {
	c := sim.Credentials()
	return openstack.Config{AuthURL: sim.AuthURL(), Username: c.UserName, Password: password, UserDomainName: c.DomainName,
		ProjectName: c.ProjectName, ProjectDomainName: c.DomainName, RequestTimeout: time.Second}
}

// TestConnectCloudWaitsForAFailingCloud: Neutron's version document
// answers 409, then 503, then works: kuryr-controller's start-up
// connection retries through both and connects, instead of exiting (what
// the fault soak found it doing on one 409).
func TestConnectCloudWaitsForAFailingCloud(t *testing.T) {
	sim := startCloud(t)
	sim.SetFault("neutron.versions", cloudsim.Fault{Rate: 1, Status: 409})
	go func() {
		time.Sleep(300 * time.Millisecond)
		sim.SetFault("neutron.versions", cloudsim.Fault{Rate: 1, Status: 503})
		time.Sleep(300 * time.Millisecond)
		sim.SetFault("neutron.versions", cloudsim.Fault{})
	}()
	c, err := connectCloud(context.Background(), cloudConfig(sim, sim.Credentials().Password), fastBackoff)
	if err != nil {
		t.Fatalf("connect through a failing cloud: %v", err)
	}
	if c == nil {
		t.Fatal("no client")
	}
	if n := sim.FaultCount("neutron.versions"); n < 2 {
		t.Fatalf("%d faults injected on neutron.versions: the retry was not exercised", n)
	}
}

// TestConnectCloudStopsOnBadCredentials: a terminal error (Keystone's 401)
// is returned after one attempt, not retried.
func TestConnectCloudStopsOnBadCredentials(t *testing.T) {
	sim := startCloud(t)
	_, err := connectCloud(context.Background(), cloudConfig(sim, "wrong"), fastBackoff)
	if err == nil || !errors.Is(err, openstack.ErrTerminal) {
		t.Fatalf("got %v, want a terminal error", err)
	}
	if n := sim.Count("keystone.tokens.create"); n != 1 {
		t.Fatalf("%d token requests, want 1 (no retry of bad credentials)", n)
	}
}
