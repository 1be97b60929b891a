package cloudsim

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

// Config is the standalone simulated cloud's configuration file (YAML or
// JSON), read by cmd/kuryr-cloudsim. Durations are strings ("50ms").
type Config struct {
	// Listen is the address to serve on; 127.0.0.1:8900 when empty.
	Listen string `json:"listen,omitempty"`
	// AdvertiseURL is the base URL the Keystone catalog gives out; the
	// listener's address when empty.
	AdvertiseURL string `json:"advertiseURL,omitempty"`
	NoAuth       bool   `json:"noAuth,omitempty"`
	// BindDelay: ports stay DOWN this long after binding (see Options).
	BindDelay Duration `json:"bindDelay,omitempty"`
	// MaxAllowedAddressPairs: Neutron's max_allowed_address_pair (see
	// Options).
	MaxAllowedAddressPairs int                `json:"maxAllowedAddressPairs,omitempty"`
	Credentials            *Credentials       `json:"credentials,omitempty"`
	Seed                   uint64             `json:"seed,omitempty"`
	Latency                map[string]Latency `json:"latency,omitempty"`
	Faults                 map[string]Fault   `json:"faults,omitempty"`
	Networks               []NetworkSpec      `json:"networks,omitempty"`
	// SecurityGroups are names of groups to create.
	SecurityGroups []string       `json:"securityGroups,omitempty"`
	Servers        []ServerConfig `json:"servers,omitempty"`
}

// ServerConfig is a server to seed; Network names one of Config.Networks.
type ServerConfig struct {
	ServerSpec `json:",inline"`
	Network    string `json:"network"`
}

// LoadConfig reads a YAML or JSON configuration file.
func LoadConfig(path string) (Config, error) {
	var cfg Config
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read cloudsim config: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return cfg, fmt.Errorf("parse cloudsim config %s: %w", path, err)
	}
	return cfg, nil
}

// Options returns the cloud options of cfg.
func (cfg Config) Options() Options {
	return Options{Credentials: cfg.Credentials, NoAuth: cfg.NoAuth, Latency: cfg.Latency, Faults: cfg.Faults,
		Seed: cfg.Seed, BindDelay: time.Duration(cfg.BindDelay), MaxAllowedAddressPairs: cfg.MaxAllowedAddressPairs}
}

// Duration is a time.Duration written as a string ("300ms") in config files.
type Duration time.Duration

// UnmarshalJSON reads "300ms" (or nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v time.Duration
	if err := durationJSON(b, &v); err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Seeded lists what ApplySeeds made.
type Seeded struct {
	Networks       []NetworkSeeded   `json:"networks"`
	SecurityGroups map[string]string `json:"securityGroups"`
	Servers        []ServerSeeded    `json:"servers"`
}

// NetworkSeeded is a seeded network.
type NetworkSeeded struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	SubnetID string `json:"subnetID"`
	CIDR     string `json:"cidr"`
}

// ServerSeeded is a seeded server.
type ServerSeeded struct {
	Name         string `json:"name"`
	ID           string `json:"id"`
	Host         string `json:"host"`
	ParentPortID string `json:"parentPortID"`
	ParentMAC    string `json:"parentMAC"`
	ParentIP     string `json:"parentIP"`
	TrunkID      string `json:"trunkID,omitempty"`
}

// ApplySeeds creates cfg's networks, security groups and servers in c.
func (cfg Config) ApplySeeds(c *Cloud) (Seeded, error) {
	out := Seeded{SecurityGroups: map[string]string{}}
	subnets := map[string]string{}
	for _, spec := range cfg.Networks {
		n, s, err := c.SeedNetworkSpec(spec)
		if err != nil {
			return out, err
		}
		subnets[spec.Name] = s.ID
		out.Networks = append(out.Networks, NetworkSeeded{Name: n.Name, ID: n.ID, SubnetID: s.ID, CIDR: s.CIDR.String()})
	}
	for _, name := range cfg.SecurityGroups {
		out.SecurityGroups[name] = c.SeedSecurityGroup(name).ID
	}
	for _, sc := range cfg.Servers {
		sid, ok := subnets[sc.Network]
		if !ok {
			return out, fmt.Errorf("seed server %s: network %q is not among the seeded networks", sc.Name, sc.Network)
		}
		spec := sc.ServerSpec
		spec.SubnetID = sid
		s, err := c.SeedServer(spec)
		if err != nil {
			return out, err
		}
		out.Servers = append(out.Servers, ServerSeeded{Name: s.Server.Name, ID: s.Server.ID, Host: s.Server.Host,
			ParentPortID: s.ParentPort.ID, ParentMAC: s.ParentPort.MACAddress,
			ParentIP: s.ParentPort.FixedIPs[0].IPAddress, TrunkID: s.TrunkID})
	}
	return out, nil
}

// durationJSON accepts "50ms" or a number of nanoseconds.
func durationJSON(raw json.RawMessage, d *time.Duration) error {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("duration %s: want a string like \"50ms\"", raw)
	}
	*d = time.Duration(n)
	return nil
}

// UnmarshalJSON reads durations as strings ("50ms").
func (l *Latency) UnmarshalJSON(b []byte) error {
	var raw struct {
		Fixed, Jitter, Exp json.RawMessage
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := durationJSON(raw.Fixed, &l.Fixed); err != nil {
		return err
	}
	if err := durationJSON(raw.Exp, &l.Exp); err != nil {
		return err
	}
	return durationJSON(raw.Jitter, &l.Jitter)
}

// UnmarshalJSON reads hangFor as a string ("30s").
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var raw struct {
		plain
		HangFor json.RawMessage `json:"hangFor"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*f = Fault(raw.plain)
	return durationJSON(raw.HangFor, &f.HangFor)
}
