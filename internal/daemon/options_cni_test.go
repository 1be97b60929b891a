package daemon

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestOptionsCNILimits(t *testing.T) {
	t.Parallel()
	o := Defaults()
	o.NodeName = "n1"
	fs := flag.NewFlagSet("kuryr-daemon", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--cni-max-requests=3", "--cni-read-timeout=2s", "--interfaces-timeout=200s"}); err != nil {
		t.Fatal(err)
	}
	if o.CNILimits.MaxRequests != 3 || o.CNILimits.ReadTimeout != 2*time.Second {
		t.Fatalf("limits from flags = %+v", o.CNILimits)
	}
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), "--cni-write-timeout") {
		t.Fatalf("write timeout shorter than an ADD's waits: error %v, want one naming --cni-write-timeout", err)
	}
	o.CNILimits.MaxRequests = 0
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--cni-max-requests") {
		t.Fatalf("zero requests at once: error %v, want one naming --cni-max-requests", err)
	}
}
