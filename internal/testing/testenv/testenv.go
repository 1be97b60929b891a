// Package testenv starts a real etcd and kube-apiserver (v1.37.2, built from
// the Go module proxy by hack/build-kube-bins.sh) for Go tests, through
// controller-runtime's envtest.
//
// Typical use is one control plane per test package, from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }
package testenv

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// Versions of the control plane the tests run against. They must match
// hack/build-kube-bins.sh, which builds them.
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.6.16"
)

// Versions of the node components the all-in-one's real nodes run. They must
// match hack/build-node-bins.sh, which builds them.
const (
	ContainerdVersion = "v2.4.2"
	CrictlVersion     = "v1.37.0"
)

// MultusVersion is the Multus CNI (gopkg.in/k8snetworkplumbingwg/multus-cni.v4)
// the all-in-one runs as meta-plugin (aio.Options.Multus). It must match
// hack/build-multus.sh, which builds it.
const MultusVersion = "v4.2.3"

// AssetsDir is where the binaries are looked for: $KUBEBUILDER_ASSETS if set,
// else the cache directory hack/build-kube-bins.sh writes to.
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(CacheDir(), fmt.Sprintf("k8s-%s-etcd-%s", KubeVersion, EtcdVersion))
}

// NodeBinDir is where the real node components (containerd, its shim, ctr,
// crictl, runc, kubelet, kubectl) are looked for: $KURYR_NODE_BINS if set,
// else the cache directory hack/build-node-bins.sh writes to.
func NodeBinDir() string {
	if d := os.Getenv("KURYR_NODE_BINS"); d != "" {
		return d
	}
	return filepath.Join(CacheDir(), fmt.Sprintf("node-k8s-%s-containerd-%s-crictl-%s", KubeVersion, ContainerdVersion, CrictlVersion))
}

// HaveNodeBins says whether hack/build-node-bins.sh has filled NodeBinDir
// (its kubelet is there).
func HaveNodeBins() bool {
	_, err := os.Stat(filepath.Join(NodeBinDir(), "kubelet"))
	return err == nil
}

// RequireNodeBins skips a test of the all-in-one's real nodes, loudly,
// without root or when hack/build-node-bins.sh has not run, and fails it
// instead under KURYR_TEST_STRICT=1 (CI builds them first).
func RequireNodeBins(t testing.TB) {
	t.Helper()
	requireBuilt(t, HaveNodeBins(), fmt.Sprintf("no kubelet in %s: run hack/build-node-bins.sh (make test does)", NodeBinDir()))
}

// MultusBinDir is where Multus (multus, thin_entrypoint) is looked for:
// $KURYR_MULTUS_BINS if set, else the cache directory hack/build-multus.sh
// writes to.
func MultusBinDir() string {
	if d := os.Getenv("KURYR_MULTUS_BINS"); d != "" {
		return d
	}
	return filepath.Join(CacheDir(), "multus-"+MultusVersion)
}

// HaveMultusBins says whether hack/build-multus.sh has filled MultusBinDir.
func HaveMultusBins() bool {
	for _, b := range []string{"multus", "thin_entrypoint"} {
		if _, err := os.Stat(filepath.Join(MultusBinDir(), b)); err != nil {
			return false
		}
	}
	return true
}

// RequireMultusBins is RequireNodeBins for the tests that also run real
// Multus: they skip, loudly, without it, and fail under KURYR_TEST_STRICT=1.
func RequireMultusBins(t testing.TB) {
	t.Helper()
	RequireNodeBins(t)
	requireBuilt(t, HaveMultusBins(), fmt.Sprintf("no multus or thin_entrypoint in %s: run hack/build-multus.sh (make test does)", MultusBinDir()))
}

// requireBuilt skips t with why unless have, and fails it instead under
// KURYR_TEST_STRICT=1 (CI builds everything first).
func requireBuilt(t testing.TB, have bool, why string) {
	t.Helper()
	if have {
		return
	}
	msg := "SKIPPED: " + why
	if os.Getenv(netnstest.StrictEnv) == "1" {
		t.Fatal(msg + " (" + netnstest.StrictEnv + "=1 forbids skipping)")
	}
	t.Skip(msg)
}

// CacheDir is the build scripts' cache: $KURYR_CACHE, else
// /var/cache/kuryr-dpdk when writable, else ~/.cache/kuryr-dpdk (as
// hack/lib/gobuild.sh decides).
func CacheDir() string {
	if c := os.Getenv("KURYR_CACHE"); c != "" {
		return c
	}
	if unixWritable("/var/cache") {
		return "/var/cache/kuryr-dpdk"
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "kuryr-dpdk")
}

func unixWritable(dir string) bool {
	f, err := os.CreateTemp(dir, ".kuryr-probe-*")
	if err != nil {
		return false
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return true
}

// ErrMissingBinaries says the control-plane binaries are not built.
var ErrMissingBinaries = errors.New("kubernetes test binaries missing")

// Options tune the control plane.
type Options struct {
	// CRDDirectoryPaths are installed before Start returns.
	CRDDirectoryPaths []string
}

// Env is a running etcd + kube-apiserver.
type Env struct {
	// Config is an admin client configuration for the API server.
	Config *rest.Config
	env    *envtest.Environment
}

// Start starts etcd and kube-apiserver from AssetsDir. It fails with
// ErrMissingBinaries, and a message naming the command that builds them,
// when they are not there.
func Start(opts Options) (*Env, error) {
	dir := AssetsDir()
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return nil, fmt.Errorf("%w: %s not found in %s; build them with `make kube-bins` (hack/build-kube-bins.sh) or point KUBEBUILDER_ASSETS at them", ErrMissingBinaries, b, dir)
		}
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		CRDDirectoryPaths:        opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing:    len(opts.CRDDirectoryPaths) > 0,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// Tests throw the data away; fsync only slows them down.
	te.ControlPlane.GetAPIServer() // makes sure the API server struct exists
	if te.ControlPlane.Etcd == nil {
		te.ControlPlane.Etcd = &envtest.Etcd{}
	}
	te.ControlPlane.Etcd.Configure().Set("unsafe-no-fsync", "true")
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("start etcd and kube-apiserver from %s: %w", dir, err)
	}
	return &Env{Config: cfg, env: te}, nil
}

// Stop stops the API server and etcd and removes their data.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	return e.env.Stop()
}

// Main starts a control plane, stores it in *env, runs the package's tests and
// stops it. A control plane that cannot start fails the whole package with the
// reason, rather than letting each test fail on its own.
func Main(m *testing.M, env **Env, opts Options) int {
	e, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the test control plane: %v\n", err)
		return 1
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "warning: stopping the test control plane: %v\n", err)
	}
	return code
}

// GoBuild builds the main package pkg (a path relative to the calling
// test's directory, e.g. "../../cmd/kuryr-cni") into dir and returns the
// binary's path: tests that run a binary as a runtime would use it.
func GoBuild(dir, pkg string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(abs))
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// AddUser returns a client configuration that authenticates as user name
// with groups (a client certificate the API server trusts). With the name
// "system:serviceaccount:<ns>:<sa>" RBAC treats it as that ServiceAccount,
// which lets tests run code with the permissions the manifests grant.
func (e *Env) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("add user %s: %w", name, err)
	}
	return u.Config(), nil
}

// ServiceAccountConfig returns a client configuration acting as the
// ServiceAccount namespace/name.
func (e *Env) ServiceAccountConfig(namespace, name string) (*rest.Config, error) {
	return e.AddUser("system:serviceaccount:"+namespace+":"+name,
		"system:serviceaccounts", "system:serviceaccounts:"+namespace, "system:authenticated")
}

// GoTestBuild compiles the tests of package pkg into a static binary at out
// (go test -c), for running them somewhere else, such as in the node VM.
func GoTestBuild(out, pkg string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	cmd := exec.Command(goBin, "test", "-c", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go test -c %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// NodeBoundServiceAccountConfig returns a client configuration that
// authenticates as ServiceAccount namespace/name with a token bound to a pod
// of that ServiceAccount scheduled on node, as the kubelet gives a
// DaemonSet's pod: the API server then knows the node from the token (user
// extra authentication.kubernetes.io/node-name), which admission policies
// check. The pod (named pod, in namespace) is created here and must not
// exist; it stays, since deleting it revokes the token.
func (e *Env) NodeBoundServiceAccountConfig(ctx context.Context, namespace, name, pod, node string) (*rest.Config, error) {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, err
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: namespace},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: name,
			Containers: []corev1.Container{{Name: "c", Image: "kuryr-dpdk/kuryr-dpdk:dev"}}},
	}
	tok, err := NodeBoundToken(ctx, cs, p, 3600)
	if err != nil {
		return nil, err
	}
	return e.TokenConfig(tok), nil
}

// NodeBoundToken creates pod (its ServiceAccount and node set) and returns
// a token of its ServiceAccount bound to it, valid for expiry seconds: the
// token the kubelet gives the pod, carrying its node. The pod must stay:
// deleting it revokes the token.
func NodeBoundToken(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, expiry int64) (string, error) {
	p, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create pod %s/%s on node %s: %w", pod.Namespace, pod.Name, pod.Spec.NodeName, err)
	}
	sa := p.Spec.ServiceAccountName
	tr, err := cs.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry,
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of ServiceAccount %s/%s bound to pod %s: %w", p.Namespace, sa, p.Name, err)
	}
	return tr.Status.Token, nil
}

// TokenConfig returns a client configuration that authenticates with the
// bearer token alone.
func (e *Env) TokenConfig(token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(e.Config)
	cfg.BearerToken = token
	return cfg
}
