package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
)

// Kuryr is a kuryr-kubernetes controller (the retired Python project, the
// peer the benchmark compares with) configured for the same environment
// as ours: nested-vlan pods, handlers vif and kuryrport only.
type Kuryr struct {
	// Venv holds kuryr-kubernetes and kuryr-lib (hack/bench/peer-venv.sh).
	Venv string
	// NeutronURL is Neutron's endpoint (noauth); ProjectID the project of
	// everything; PodSubnetID, WorkerSubnetID and SecurityGroupID what
	// its pods' ports get and where its node VMs' ports are.
	NeutronURL, ProjectID, PodSubnetID, WorkerSubnetID, SecurityGroupID string
	// HealthPort and ExporterPort are its health server and Prometheus
	// exporter ports. It binds both on "::" (all addresses): its code
	// hard-codes the address, only the ports are options.
	HealthPort, ExporterPort int
	// Pool, when set, turns its nested VIF pool on.
	Pool *KuryrPool
}

// KuryrPool is kuryr-kubernetes' [vif_pool] section.
type KuryrPool struct {
	// Min, Batch and Max are ports_pool_min, _batch and _max (0: no
	// limit); UpdateFrequency is ports_pool_update_frequency in seconds,
	// how often released ports are returned to the pool.
	Min, Batch, Max, UpdateFrequency int
}

// String describes the pool settings for a report.
func (p *KuryrPool) String() string {
	if p == nil {
		return "no pool"
	}
	return fmt.Sprintf("nested pool min %d, batch %d, max %d, update every %d s", p.Min, p.Batch, p.Max, p.UpdateFrequency)
}

// Start writes the configuration and credentials under dir and starts
// kuryr-k8s-controller against the API server of kube, its output to
// logPath.
func (k *Kuryr) Start(kube *rest.Config, dir, logPath string) (*Process, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	files := map[string][]byte{"ca.crt": kube.CAData, "client.crt": kube.CertData, "client.key": kube.KeyData}
	for name, b := range files {
		if len(b) == 0 {
			return nil, fmt.Errorf("kuryr-kubernetes needs the API server's %s: the client configuration has none", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "kuryr.conf")
	if err := os.WriteFile(conf, []byte(k.config(strings.TrimSuffix(kube.Host, "/"), dir)), 0o600); err != nil {
		return nil, err
	}
	// A pooled kuryr-controller reports ready only once this file (a fixed
	// path in its code) exists, and writes it after loading its pools.
	if err := os.Remove("/tmp/pools_loaded"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return StartProcess(filepath.Join(k.Venv, "bin", "kuryr-k8s-controller"), []string{"--config-file", conf}, kuryrEnv(os.Environ()), logPath)
}

// kuryrEnv drops the variables that make python-requests ignore the CA
// file kuryr-kubernetes passes it.
func kuryrEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == "REQUESTS_CA_BUNDLE" || k == "CURL_CA_BUNDLE" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// config is the kuryr.conf text. What each setting is for:
//   - [kubernetes] token_file is set empty: it defaults to the service
//     account token path; the client certificate authenticates instead.
//   - [binding] default_driver vlan: its VLAN ID allocator fails with the
//     default (veth) driver.
//   - [neutron_defaults] resource_tags stays unset: with tags it looks
//     for the parent port by tag too and does not find the operator's
//     untagged VM port.
func (k *Kuryr) config(apiRoot, dir string) string {
	pool := "noop"
	if k.Pool != nil {
		pool = "nested"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[DEFAULT]
debug = false
use_stderr = true

[kubernetes]
api_root = %s
ssl_ca_crt_file = %s
ssl_client_crt_file = %s
ssl_client_key_file = %s
ssl_verify_server_crt = true
token_file =
pod_vif_driver = nested-vlan
vif_pool_driver = %s
enabled_handlers = vif,kuryrport

[neutron]
auth_type = none
endpoint = %s

[neutron_defaults]
project = %s
pod_subnet = %s
pod_security_groups = %s

[pod_vif_nested]
worker_nodes_subnets = %s

[binding]
default_driver = kuryr.lib.binding.drivers.vlan

[health_server]
port = %d

[prometheus_exporter]
controller_exporter_port = %d
`, apiRoot, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"),
		pool, k.NeutronURL, k.ProjectID, k.PodSubnetID, k.SecurityGroupID, k.WorkerSubnetID, k.HealthPort, k.ExporterPort)
	if k.Pool != nil {
		fmt.Fprintf(&b, `
[vif_pool]
ports_pool_min = %d
ports_pool_batch = %d
ports_pool_max = %d
ports_pool_update_frequency = %d
`, k.Pool.Min, k.Pool.Batch, k.Pool.Max, k.Pool.UpdateFrequency)
	}
	return b.String()
}
