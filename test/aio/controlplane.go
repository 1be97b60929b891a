package aio

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/freeport"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

var crlogOnce sync.Once

// Identities the control plane knows (token auth file). The scheduler and
// the controller manager get their bootstrap RBAC users; the admin is in
// system:masters; kuryr-controller is the ServiceAccount of
// deploy/kuryr-dpdk/rbac.yaml, with exactly the permissions it grants, so
// the whole environment runs on the RBAC an operator deploys. kuryr-daemon
// is not here: a static token carries no node, and the admission policy
// refuses every write of a daemon whose token does not (daemonToken).
var identities = []struct{ name, user, groups string }{
	{"admin", "kuryr-aio-admin", "system:masters"},
	{"kube-scheduler", "system:kube-scheduler", ""},
	{"kube-controller-manager", "system:kube-controller-manager", ""},
	{"kuryr-controller", "system:serviceaccount:kuryr-dpdk:kuryr-controller", "system:serviceaccounts,system:serviceaccounts:kuryr-dpdk"},
}

// FabricAPIPort is the API server's port on the fabric (the fabric proxy's,
// in the fabric namespace: environments side by side do not collide), as
// deploy/overlays/all-in-one tells kuryr's pods.
const FabricAPIPort = 6443

// controlPlane is etcd, kube-apiserver, kube-scheduler and
// kube-controller-manager, run from the binaries hack/build-kube-bins.sh
// builds.
type controlPlane struct {
	URL         string
	Kubeconfigs map[string]string // by identity name
	Admin       *rest.Config
	// FabricURL is the API server as the real nodes reach it, through the
	// fabric proxy on the workers' gateway address (in its certificate).
	FabricURL  string
	caPEM      []byte
	nodeTokens map[string]string // the real nodes' kubelets, by node name
	api        *Process
	admin      *authClient // HTTP as the admin, for /readyz
}

func (e *Env) startControlPlane(ctx context.Context) error {
	gw := net.IP(e.Networks.Worker.GatewayIP.AsSlice())
	var nodes []string
	for i := 1; e.opts.RealNodes && i <= e.opts.Nodes; i++ {
		nodes = append(nodes, nodeName(i))
	}
	e.cp.FabricURL = "https://" + net.JoinHostPort(gw.String(), strconv.Itoa(FabricAPIPort))
	return e.runControlPlane(ctx, []net.IP{gw}, nodes, e.opts.RealNodes)
}

// runControlPlane starts the control plane with a serving certificate for
// 127.0.0.1 and servingIPs, a token per kubelet of nodes (system:node:<name>)
// and, with egress, the API server's way to the kubelets on the fabric.
func (e *Env) runControlPlane(ctx context.Context, servingIPs []net.IP, nodes []string, egress bool) error {
	dir := filepath.Join(e.StateDir, "control-plane")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	kb := e.opts.KubeBinDir
	for _, b := range []string{"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(kb, b)); err != nil {
			return fmt.Errorf("%s not found in %s: build it with hack/build-kube-bins.sh (make kube-bins): %w", b, kb, err)
		}
	}
	p, err := writePKI(dir, servingIPs...)
	if err != nil {
		return err
	}
	e.cp.caPEM = p.caPEM
	tokens := map[string]string{}
	var tokFile strings.Builder
	for _, id := range identities {
		tokens[id.name] = randomHex(16)
		fmt.Fprintf(&tokFile, "%s,%s,%s,%q\n", tokens[id.name], id.user, id.user, id.groups)
	}
	// The real nodes' kubelets, as the Node authorizer knows them.
	e.cp.nodeTokens = map[string]string{}
	for _, name := range nodes {
		e.cp.nodeTokens[name] = randomHex(16)
		fmt.Fprintf(&tokFile, "%s,system:node:%s,system:node:%s,\"system:nodes\"\n", e.cp.nodeTokens[name], name, name)
	}
	tokPath := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokPath, []byte(tokFile.String()), 0o600); err != nil {
		return err
	}

	ports, err := freeport.Pick(3)
	if err != nil {
		return err
	}
	etcdURL := "http://" + loopback(ports[0])
	peerURL := "http://" + loopback(ports[1])
	e.cp.URL = "https://" + loopback(ports[2])

	etcd := e.newProcess("etcd", filepath.Join(kb, "etcd"), []string{
		"--name=aio", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=aio=" + peerURL, "--unsafe-no-fsync", "--log-level=warn",
	}, nil)
	if err := e.startProc(etcd); err != nil {
		return err
	}
	if err := waitHTTP(ctx, etcd, nil, etcdURL+"/health", 60*time.Second); err != nil {
		return err
	}

	apiArgs := []string{
		"--etcd-servers=" + etcdURL, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[2]),
		"--tls-cert-file=" + p.ServingCert, "--tls-private-key-file=" + p.ServingKey, "--client-ca-file=" + p.CACert,
		"--token-auth-file=" + tokPath, "--authorization-mode=Node,RBAC",
		"--service-account-key-file=" + p.SAPub, "--service-account-signing-key-file=" + p.SAKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
	}
	if egress {
		egress, err := e.startEgressProxy(dir)
		if err != nil {
			return err
		}
		// The node names (the default's first choice) resolve nowhere.
		apiArgs = append(apiArgs, "--egress-selector-config-file="+egress, "--kubelet-preferred-address-types=InternalIP")
	}
	api := e.newProcess("kube-apiserver", filepath.Join(kb, "kube-apiserver"), apiArgs, nil)
	if err := e.startProc(api); err != nil {
		return err
	}
	e.cp.Kubeconfigs = map[string]string{}
	for _, id := range identities {
		path := filepath.Join(dir, id.name+".kubeconfig")
		if err := writeKubeconfig(path, e.cp.URL, p.caPEM, id.name, tokens[id.name]); err != nil {
			return err
		}
		e.cp.Kubeconfigs[id.name] = path
	}
	e.cp.Admin = &rest.Config{Host: e.cp.URL, BearerToken: tokens["admin"], TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM},
		QPS: 200, Burst: 400}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	hdr := http.Header{"Authorization": {"Bearer " + tokens["admin"]}}
	e.cp.api, e.cp.admin = api, &authClient{hc, hdr}
	if err := waitHTTP(ctx, api, e.cp.admin, e.cp.URL+"/readyz", 90*time.Second); err != nil {
		return err
	}
	e.logf("kube-apiserver ready at %s", e.cp.URL)

	sched := e.newProcess("kube-scheduler", filepath.Join(kb, "kube-scheduler"), []string{
		"--kubeconfig=" + e.cp.Kubeconfigs["kube-scheduler"], "--leader-elect=false", "--secure-port=0",
	}, nil)
	kcm := e.newProcess("kube-controller-manager", filepath.Join(kb, "kube-controller-manager"), []string{
		"--kubeconfig=" + e.cp.Kubeconfigs["kube-controller-manager"], "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file=" + p.SAKey, "--root-ca-file=" + p.CACert,
		"--use-service-account-credentials=true", "--cluster-name=kuryr-aio",
		"--node-monitor-period=1s", // lifts the not-ready taint of new nodes within a second
	}, nil)
	for _, pr := range []*Process{sched, kcm} {
		if err := e.startProc(pr); err != nil {
			return err
		}
	}

	crds := []string{filepath.Join(e.opts.RepoRoot, "deploy", "crds"), filepath.Join(e.opts.RepoRoot, "deploy", "third-party")}
	// envtest's CRD installer logs through controller-runtime's logger;
	// without one set it complains on stderr.
	crlogOnce.Do(func() { crlog.SetLogger(logr.Discard()) })
	if _, err := envtest.InstallCRDs(e.cp.Admin, envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("install CRDs from %v: %w", crds, err)
	}
	// kuryr's RBAC, the admission policy that scopes each daemon to its
	// node, and the DRA driver's DeviceClass and role, as the base deploys
	// them: a daemon needs a token bound to a pod on its node (the
	// kubelet's, or daemonToken's).
	for _, f := range []string{"rbac.yaml", "admission.yaml", "dra.yaml"} {
		path := filepath.Join(e.opts.RepoRoot, "deploy", "kuryr-dpdk", f)
		if _, err := testenv.Apply(ctx, e.cp.Admin, path); err != nil {
			return fmt.Errorf("apply %s: %w", path, err)
		}
	}
	return nil
}

// daemonToken writes a kubeconfig for the kuryr-daemon process of the
// simulated node n (no kubelet runs it): a token of the ServiceAccount
// kuryr-dpdk/kuryr-daemon bound to a pod on n, as the kubelet gives the
// DaemonSet's pod, so that the API server knows the node
// (authentication.kubernetes.io/node-name) and the admission policy lets
// the daemon write its own node's objects. The pod stands for the
// DaemonSet's: host network (the kubelet stand-in marks it Running and
// plugs nothing), every taint tolerated; deleting it would revoke the
// token.
func (e *Env) daemonToken(ctx context.Context, n *Node) (string, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kuryr-daemon-" + n.Name, Namespace: "kuryr-dpdk",
			Labels: map[string]string{"app.kubernetes.io/component": "kuryr-daemon-token"}},
		Spec: corev1.PodSpec{NodeName: n.Name, ServiceAccountName: "kuryr-daemon", HostNetwork: true,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:  []corev1.Container{{Name: "daemon", Image: KuryrImage, Command: []string{"/usr/bin/kuryr-daemon"}}}},
	}
	// A year: the environment may run that long (make run); the API
	// server sets no maximum.
	tok, err := testenv.NodeBoundToken(ctx, e.Clientset, pod, 365*24*3600)
	if err != nil {
		return "", fmt.Errorf("kuryr-daemon's token on node %s: %w", n.Name, err)
	}
	path := filepath.Join(e.StateDir, "control-plane", "kuryr-daemon-"+n.Name+".kubeconfig")
	if err := writeKubeconfig(path, e.cp.URL, e.cp.caPEM, "kuryr-daemon", tok); err != nil {
		return "", err
	}
	return path, nil
}

// RestartAPIServer kills kube-apiserver (SIGKILL, as a crash) and starts it
// again on the same address and etcd, and waits until it is ready. Every
// client (kuryr's, the kubelets', the stand-ins') reconnects on its own.
func (e *Env) RestartAPIServer(ctx context.Context) error {
	start := time.Now()
	if err := e.StopAPIServer(); err != nil {
		return err
	}
	if err := e.StartAPIServer(ctx); err != nil {
		return err
	}
	e.logf("kube-apiserver killed and ready again in %.1f s", time.Since(start).Seconds())
	return nil
}

// StopAPIServer kills kube-apiserver (SIGKILL, as a crash): an outage of
// the API server until StartAPIServer. etcd and every other process keep
// running; their requests to the API server are refused meanwhile.
func (e *Env) StopAPIServer() error {
	if e.cp.api == nil {
		return fmt.Errorf("stop kube-apiserver: environment %s runs none", e.ID)
	}
	return e.cp.api.kill()
}

// StartAPIServer starts kube-apiserver again (after StopAPIServer) on the
// same address and etcd, and waits until it is ready.
func (e *Env) StartAPIServer(ctx context.Context) error {
	if e.cp.api == nil {
		return fmt.Errorf("start kube-apiserver: environment %s runs none", e.ID)
	}
	if err := e.cp.api.start(); err != nil {
		return err
	}
	return waitHTTP(ctx, e.cp.api, e.cp.admin, e.cp.URL+"/readyz", 90*time.Second)
}

func writeKubeconfig(path, server string, ca []byte, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kuryr-aio"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kuryr-aio"] = &clientcmdapi.Context{Cluster: "kuryr-aio", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "kuryr-aio"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

type authClient struct {
	c   *http.Client
	hdr http.Header
}

// waitHTTP polls url until it answers 200, the process exits, or bound
// passes.
func waitHTTP(ctx context.Context, p *Process, ac *authClient, url string, bound time.Duration) error {
	if ac == nil {
		ac = &authClient{c: &http.Client{Timeout: 2 * time.Second}}
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	exited, exitErr := p.Exited()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range ac.hdr {
			req.Header[k] = v
		}
		resp, err := ac.c.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("%s exited while starting (%v); its log ends:%s", p.Name, exitErr(), p.Tail(15))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s after %s (%v); its log ends:%s", p.Name, url, bound, last, p.Tail(15))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startEgressProxy starts the API server's way to the kubelets on the
// fabric (an HTTP CONNECT proxy dialing from the fabric namespace) and
// writes the EgressSelectorConfiguration that sends the "cluster" traffic
// (exec, logs, port-forward) through it into dir; it returns the file.
func (e *Env) startEgressProxy(dir string) (string, error) {
	// A unix socket: the API server speaks HTTP CONNECT over TCP only with
	// TLS (without a tlsConfig it panics).
	p, err := startConnectProxy(filepath.Join(dir, "egress.sock"), func() string { return e.fabric })
	if err != nil {
		return "", err
	}
	e.defer_(p.Close)
	path := filepath.Join(dir, "egress-selector.yaml")
	conf := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, p.Addr())
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// ControlPlaneOptions configure a control plane started on its own
// (StartControlPlane), for real nodes that are not the all-in-one's, such
// as the QEMU node VM of test/vmpod.
type ControlPlaneOptions struct {
	// RepoRoot is the repository (deploy/crds, deploy/kuryr-dpdk/rbac.yaml);
	// found from the working directory when empty.
	RepoRoot string
	// KubeBinDir holds etcd and the Kubernetes binaries; the cache of
	// hack/build-kube-bins.sh when empty.
	KubeBinDir string
	// ServingIPs are put into the API server's serving certificate besides
	// 127.0.0.1 (the addresses the nodes dial).
	ServingIPs []net.IP
	// Nodes are the names of the kubelets that get a token
	// (system:node:<name>, group system:nodes).
	Nodes []string
	// Log receives progress lines; nothing when nil.
	Log io.Writer
}

// ControlPlane is the all-in-one's control plane (etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager, the CRDs and kuryr's RBAC)
// without the rest of the environment.
type ControlPlane struct {
	env *Env
	// Admin talks to the API server as a member of system:masters.
	Admin *rest.Config
	// URL is the API server's loopback address.
	URL string
	// StateDir holds the control plane's files; LogDir its processes' logs.
	StateDir, LogDir string
}

// StartControlPlane starts a control plane as the all-in-one does. On
// failure everything it started is stopped before it returns.
func StartControlPlane(ctx context.Context, opts ControlPlaneOptions) (_ *ControlPlane, err error) {
	if opts.RepoRoot == "" {
		if opts.RepoRoot, err = findRepoRoot(); err != nil {
			return nil, err
		}
	}
	if opts.KubeBinDir == "" {
		opts.KubeBinDir = testenv.AssetsDir()
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	e := &Env{ID: randomHex(3), opts: Options{RepoRoot: opts.RepoRoot, KubeBinDir: opts.KubeBinDir, Log: opts.Log}}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	if e.StateDir, err = os.MkdirTemp("", "kuryr-cp-"+e.ID+"-"); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	dir := e.StateDir
	e.defer_(func() error { return os.RemoveAll(dir) })
	if err := os.MkdirAll(e.LogDir(), 0o755); err != nil {
		return nil, err
	}
	if err := e.runControlPlane(ctx, opts.ServingIPs, opts.Nodes, false); err != nil {
		return nil, err
	}
	return &ControlPlane{env: e, Admin: e.cp.Admin, URL: e.cp.URL, StateDir: e.StateDir, LogDir: e.LogDir()}, nil
}

// NodeKubeconfig is a kubeconfig for the kubelet of node (one of
// ControlPlaneOptions.Nodes) that names the API server at server.
func (c *ControlPlane) NodeKubeconfig(node, server string) ([]byte, error) {
	tok, ok := c.env.cp.nodeTokens[node]
	if !ok {
		return nil, fmt.Errorf("node %q has no token: name it in ControlPlaneOptions.Nodes", node)
	}
	path := filepath.Join(c.StateDir, "kubelet-"+node+".kubeconfig")
	if err := writeKubeconfig(path, server, c.env.cp.caPEM, "system:node:"+node, tok); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// CAPEM is the cluster CA (PEM), which signed the API server's certificate.
func (c *ControlPlane) CAPEM() []byte { return c.env.cp.caPEM }

// Processes are the control plane's programs.
func (c *ControlPlane) Processes() []*Process { return c.env.Processes() }

// Close stops the control plane and removes its files.
func (c *ControlPlane) Close() error { return c.env.Close() }
