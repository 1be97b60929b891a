package cloudsim

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestExampleConfig keeps cmd/kuryr-cloudsim/example.yaml (used by
// docs/cloudsim.md) loadable and seedable.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(filepath.Join("..", "..", "cmd", "kuryr-cloudsim", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Latency["nova.interfaces.attach"].Exp != 10*time.Millisecond || cfg.Latency["neutron.*"].Jitter != 3*time.Millisecond {
		t.Errorf("latency %+v", cfg.Latency)
	}
	c := New(cfg.Options())
	seeded, err := cfg.ApplySeeds(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(seeded.Networks) != 2 || seeded.Networks[0].ID != "5f0c6c1e-0000-4000-8000-000000000001" ||
		len(seeded.Servers) != 2 || seeded.Servers[0].ID != "9a3e0d57-0000-4000-8000-000000000001" ||
		seeded.Servers[0].TrunkID == "" || seeded.Servers[0].ParentIP != "10.10.0.2" || seeded.SecurityGroups["kuryr-pods"] == "" {
		t.Errorf("seeded %+v", seeded)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown field": "listen: x\nbogus: 1\n",
		"bad duration":  "latency:\n  '*': {fixed: soon}\n",
		"bad network":   "networks: [{name: a, cidr: 10.0.0.0/33}]\n",
		"bad server":    "networks: [{name: a, cidr: 10.0.0.0/24}]\nservers: [{name: s, network: b}]\n",
	} {
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p)
		if err == nil {
			_, err = cfg.ApplySeeds(New(cfg.Options()))
		}
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
