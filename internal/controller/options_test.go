package controller

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOptionsValidateNamesEveryBadField(t *testing.T) {
	t.Parallel()
	o := Defaults()
	o.ClusterID, o.DefaultDriver, o.Primary, o.DefaultDPDKDriver = "a b", "nested-dpdk", true, "igb_uio"
	o.ActiveTimeout, o.GCPeriod, o.ReleaseGrace, o.Workers = Duration{0}, Duration{time.Millisecond}, Duration{-time.Second}, 0
	o.ReleaseTimeout = Duration{0}
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate accepted bad options")
	}
	for _, field := range []string{"clusterID", "defaultDriver", "podSubnetID", "defaultDPDKDriver", "activeTimeout", "gcPeriod", "releaseGrace", "releaseTimeout", "workers"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults are invalid: %v", err)
	}
}

func TestOptionsLoadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	must(t, os.WriteFile(good, []byte("clusterID: prod\nprimary: true\npodSubnetID: s1\ndefaultDriver: nested-macvlan\nactiveTimeout: 45s\nworkerSubnetIDs: [w1, w2]\n"), 0o600))
	o := Defaults()
	must(t, o.LoadFile(good))
	if o.ClusterID != "prod" || !o.Primary || o.DefaultDriver != "nested-macvlan" || o.ActiveTimeout.Duration != 45*time.Second || len(o.WorkerSubnetIDs) != 2 {
		t.Fatalf("loaded %+v", o)
	}
	if o.GCPeriod != Defaults().GCPeriod {
		t.Fatalf("a field the file does not set lost its default: %v", o.GCPeriod)
	}
	for name, body := range map[string]string{
		"unknown field": "podSubnet: typo\n",
		"bad duration":  "activeTimeout: soon\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		must(t, os.WriteFile(p, []byte(body), 0o600))
		o := Defaults()
		err := o.LoadFile(p)
		if err == nil {
			t.Errorf("%s: loaded without error", name)
			continue
		}
		if want := strings.SplitN(body, ":", 2)[0]; !strings.Contains(err.Error(), want) && !strings.Contains(err.Error(), "soon") {
			t.Errorf("%s: error %q names neither the field nor the value", name, err)
		}
	}
}

func TestOptionsPools(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "pools.yaml")
	must(t, os.WriteFile(p, []byte("maxCloudWrites: 4\npools:\n  nestedVLAN: {min: 2, max: 8, batch: 4}\n  nestedDPDK: {min: 1, max: 2, batch: 2}\n"), 0o600))
	o := Defaults()
	must(t, o.LoadFile(p))
	if o.MaxCloudWrites != 4 || o.Pools.NestedVLAN != (PoolSize{Min: 2, Max: 8, Batch: 4}) || o.Pools.NestedMACVLAN.on() ||
		o.Pools.NestedDPDK != (PoolSize{Min: 1, Max: 2, Batch: 2}) {
		t.Fatalf("loaded %+v", o)
	}
	must(t, o.Validate())
	if Defaults().Pools.NestedVLAN.on() || Defaults().Pools.NestedMACVLAN.on() || Defaults().Pools.NestedDPDK.on() {
		t.Fatal("pools are on by default")
	}
	o.MaxCloudWrites = -1
	o.Pools.NestedVLAN = PoolSize{Min: 9, Max: 8, Batch: 4}
	o.Pools.NestedMACVLAN = PoolSize{Min: 1, Max: 2, Batch: 3}
	o.Pools.NestedDPDK = PoolSize{Min: -1, Max: 2, Batch: 1}
	err := o.Validate()
	for _, field := range []string{"maxCloudWrites:", "pools.nestedVLAN:", "pools.nestedMACVLAN.batch:", "pools.nestedDPDK:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}

// TestOptionsPoolNetworks: the declared pools of every driver
// (pools.nested{VLAN,MACVLAN,DPDK}Networks) load from the file, and are
// refused without their driver's size, with IDs that are not Neutron's,
// or (nested-vlan, nested-macvlan) with no security groups when
// podSecurityGroups is empty too, each error naming its field.
func TestOptionsPoolNetworks(t *testing.T) {
	t.Parallel()
	const subnet, sg = "6e8a7f52-1c2b-4d3e-9f40-5a6b7c8d9e0f", "0f1e2d3c-4b5a-4968-8776-655443322110"
	p := filepath.Join(t.TempDir(), "pools.yaml")
	var conf strings.Builder
	conf.WriteString("pools:\n")
	for _, d := range []string{"nestedVLAN", "nestedMACVLAN", "nestedDPDK"} {
		conf.WriteString("  " + d + ": {min: 1, max: 2, batch: 2}\n  " + d + "Networks:\n  - subnetID: " + subnet + "\n    securityGroups: [" + sg + "]\n")
	}
	must(t, os.WriteFile(p, []byte(conf.String()), 0o600))
	o := Defaults()
	must(t, o.LoadFile(p))
	want := []PoolNetwork{{SubnetID: subnet, SecurityGroups: []string{sg}}}
	for _, d := range o.Pools.byDriver() {
		if !slices.EqualFunc(d.networks, want, func(a, b PoolNetwork) bool {
			return a.SubnetID == b.SubnetID && slices.Equal(a.SecurityGroups, b.SecurityGroups)
		}) {
			t.Fatalf("%sNetworks loaded as %+v", d.field, d.networks)
		}
	}
	must(t, o.Validate())
	bad := PoolNetwork{SubnetID: "../x", SecurityGroups: []string{"default"}}
	o.Pools.NestedVLANNetworks = append(o.Pools.NestedVLANNetworks, bad)
	o.Pools.NestedMACVLANNetworks = append(o.Pools.NestedMACVLANNetworks, PoolNetwork{SubnetID: subnet})
	o.Pools.NestedDPDKNetworks = append(o.Pools.NestedDPDKNetworks, bad, PoolNetwork{SubnetID: subnet})
	o.Pools.NestedDPDK = PoolSize{}
	err := o.Validate()
	for _, field := range []string{"pools.nestedVLANNetworks[1].subnetID:", "pools.nestedVLANNetworks[1].securityGroups[0]:",
		"pools.nestedMACVLANNetworks[1].securityGroups: empty and podSecurityGroups empty",
		"pools.nestedDPDKNetworks:", "pools.nestedDPDKNetworks[1].subnetID:", "pools.nestedDPDKNetworks[1].securityGroups[0]:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
	// A DPDK pool with no groups serves claims; one of the other drivers
	// takes podSecurityGroups.
	if err != nil && strings.Contains(err.Error(), "pools.nestedDPDKNetworks[2]") {
		t.Errorf("error %v refuses a DPDK network without security groups", err)
	}
	o.PodSecurityGroups = []string{sg}
	if err := o.Validate(); err != nil && strings.Contains(err.Error(), "pools.nestedMACVLANNetworks[1]") {
		t.Errorf("with podSecurityGroups set, error %v still refuses a network without its own", err)
	}
}

func TestOptionsPoolFlags(t *testing.T) {
	t.Parallel()
	o := Defaults()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o.AddFlags(fs)
	must(t, fs.Parse([]string{"--max-cloud-writes=3", "--pool-nested-vlan-min=1", "--pool-nested-vlan-max=8", "--pool-nested-vlan-batch=4", "--pool-nested-macvlan-max=2", "--pool-nested-macvlan-batch=2",
		"--pool-nested-dpdk-min=2", "--pool-nested-dpdk-max=4", "--pool-nested-dpdk-batch=2"}))
	if o.MaxCloudWrites != 3 || o.Pools.NestedVLAN != (PoolSize{Min: 1, Max: 8, Batch: 4}) || o.Pools.NestedMACVLAN != (PoolSize{Max: 2, Batch: 2}) ||
		o.Pools.NestedDPDK != (PoolSize{Min: 2, Max: 4, Batch: 2}) {
		t.Fatalf("parsed %+v", o)
	}
	must(t, o.Validate())
}

// TestValidateErrorOrderIsStable: Validate names its problems in the same
// order every run (the pools' checks once ranged over a map).
func TestValidateErrorOrderIsStable(t *testing.T) {
	o := Defaults()
	o.Pools.NestedVLAN = PoolSize{Min: 2, Max: 1, Batch: 1}
	o.Pools.NestedMACVLAN = PoolSize{Min: 2, Max: 1, Batch: 1}
	want := o.Validate().Error()
	if !strings.Contains(want, "pools.nestedVLAN") || strings.Index(want, "pools.nestedVLAN") > strings.Index(want, "pools.nestedMACVLAN") {
		t.Fatalf("Validate: %q, want pools.nestedVLAN before pools.nestedMACVLAN", want)
	}
	for range 50 {
		if got := o.Validate().Error(); got != want {
			t.Fatalf("Validate changed its answer:\n%s\nthen\n%s", want, got)
		}
	}
}
