package main

import (
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// TestStartupProbeCoversTheCloudWait: the deployed Deployment's startup
// probe lasts longer than the longest wait for OpenStack at start
// (connectBackoff's sleeps at their most jitter, plus every attempt
// running into the default request timeout of a cloud that hangs). The
// probes listen only after that wait, so a shorter probe would have the
// kubelet restart a controller that is waiting, as it should, for the
// cloud.
func TestStartupProbeCoversTheCloudWait(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/kuryr-dpdk/controller.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var probeWindow time.Duration
	for _, doc := range strings.Split(string(raw), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("deploy/kuryr-dpdk/controller.yaml: %v", err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if p := c.StartupProbe; p != nil {
				probeWindow = time.Duration(p.PeriodSeconds*p.FailureThreshold) * time.Second
			}
		}
	}
	if probeWindow == 0 {
		t.Fatal("the controller's container has no startup probe: the liveness probe restarts it while it waits for OpenStack")
	}
	b := connectBackoff
	var wait time.Duration
	sleep := b.Initial
	for attempt := 1; attempt < b.Attempts; attempt++ {
		wait += time.Duration(float64(sleep) * (1 + b.Jitter))
		sleep = min(time.Duration(float64(sleep)*b.Factor), b.Max)
	}
	wait += time.Duration(b.Attempts) * openstack.DefaultRequestTimeout
	if probeWindow < wait {
		t.Fatalf("startup probe window %v, want at least the longest wait for OpenStack at start, %v", probeWindow, wait)
	}
	t.Logf("startup probe window %v; longest wait for OpenStack at start %v", probeWindow, wait)
}
