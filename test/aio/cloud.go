package aio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/freeport"
)

// startCloud starts the simulated OpenStack on 127.0.0.1 and seeds it with
// the networks the all-in-one uses.
func (e *Env) startCloud(ctx context.Context) error {
	// A port turns ACTIVE a moment after it is bound, as with a real L2 agent.
	// The catalog names the address a client asked Keystone at: the host's
	// 127.0.0.1, or the fabric proxy's for kuryr-controller's pod.
	// nested-macvlan (the management network's driver here) puts one
	// allowed address pair per pod on its node VM's port, so the cloud has
	// Neutron's max_allowed_address_pair raised from its default of 10, as
	// an operator of nested-macvlan raises it (docs/all-in-one.md).
	e.Cloud = cloudsim.New(cloudsim.Options{BindDelay: 50 * time.Millisecond, AdvertiseRequestHost: true, MaxAllowedAddressPairs: 1000})
	if err := e.Cloud.Start(e.ctx, "127.0.0.1:0"); err != nil {
		return fmt.Errorf("start the simulated cloud: %w", err)
	}
	e.defer_(func() error { e.Cloud.Close(); return nil })
	for _, n := range []struct {
		name, cidr string
		out        *cloudsim.Subnet
	}{
		{"k8s-workers", "10.0.0.0/24", &e.Networks.Worker},
		{"k8s-pods", "10.1.0.0/16", &e.Networks.Pod},
		{"management", cmp.Or(e.opts.ManagementCIDR, "10.2.0.0/24"), &e.Networks.Management},
		{"data-plane", cmp.Or(e.opts.DataPlaneCIDR, "10.3.0.0/24"), &e.Networks.DataPlane},
	} {
		_, sub, err := e.Cloud.SeedNetwork(n.name, n.cidr)
		if err != nil {
			return err
		}
		*n.out = sub
	}
	if e.opts.DRA || e.opts.DPDKPool.Max > 0 {
		// kuryr-controller pools only ports that name their security
		// groups: the DPDK pools' ports get this one (with DRA or
		// PodPools every network that names none gets it,
		// podSecurityGroups).
		e.poolSG = e.Cloud.SeedSecurityGroup("kuryr-aio-pods").ID
	}
	e.logf("simulated OpenStack at %s (Keystone %s)", e.Cloud.URL(), e.Cloud.AuthURL())
	return nil
}

// ClusterID is the tag kuryr-controller puts on the ports it makes.
func (e *Env) ClusterID() string { return "kuryr-aio-" + e.ID }

// cloudEnv is the openrc of the simulated cloud.
func (e *Env) cloudEnv() []string {
	c := e.Cloud.Credentials()
	return []string{
		"OS_AUTH_URL=" + e.Cloud.AuthURL(), "OS_USERNAME=" + c.UserName, "OS_PASSWORD=" + c.Password,
		"OS_USER_DOMAIN_NAME=" + c.DomainName, "OS_PROJECT_ID=" + c.ProjectID, "OS_REGION_NAME=" + c.Region,
	}
}

func (e *Env) startController(ctx context.Context) error {
	ports, err := freeport.Pick(2) // health, pprof
	if err != nil {
		return err
	}
	port := ports[0]
	args := []string{
		"--kubeconfig=" + e.cp.Kubeconfigs["kuryr-controller"], "--leader-elect=false",
		"--metrics-bind-address=0", "--health-probe-bind-address=" + loopback(port),
		"--primary", "--pod-subnet-id=" + e.Networks.Pod.ID, "--worker-subnet-ids=" + e.Networks.Worker.ID,
		"--default-driver=" + string(e.MgmtDriver), "--cluster-id=" + e.ClusterID(),
	}
	if e.opts.DPDKPool.Max > 0 {
		conf, err := e.writePoolConfig()
		if err != nil {
			return err
		}
		args = append(args, "--config="+conf)
	}
	if e.opts.Pprof {
		args = append(args, "--pprof-bind-address="+loopback(ports[1]))
	}
	args = append(args, e.opts.ControllerArgs...)
	e.Controller = e.newProcess("kuryr-controller", filepath.Join(e.binDir, "kuryr-controller"), args, e.cloudEnv())
	if err := e.startProc(e.Controller); err != nil {
		return err
	}
	e.controllerHealth = "http://" + loopback(port) + "/readyz"
	if err := waitHTTP(ctx, e.Controller, nil, e.controllerHealth, 60*time.Second); err != nil {
		return err
	}
	e.logf("kuryr-controller ready (log %s)", e.Controller.Log)
	return nil
}

// RestartController stops kuryr-controller (SIGTERM) and starts it again.
// With crash, it is killed instead. On real nodes it is the Deployment's
// pod: deleted (or its process killed, with crash) and waited for
// (restart.go).
func (e *Env) RestartController(ctx context.Context, crash bool) error {
	if e.opts.RealNodes && !e.opts.NoKuryr {
		return e.restartControllerPod(ctx, crash)
	}
	if e.Controller == nil {
		return fmt.Errorf("restart kuryr-controller: environment %s runs none", e.ID)
	}
	var err error
	if crash {
		err = e.Controller.kill()
	} else {
		err = e.Controller.stop(10 * time.Second)
	}
	if err != nil {
		return err
	}
	if err := e.Controller.start(); err != nil {
		return err
	}
	return waitHTTP(ctx, e.Controller, nil, e.controllerHealth, 60*time.Second)
}

func (e *Env) startDaemon(ctx context.Context, n *Node) error {
	ports, err := freeport.Pick(3)
	if err != nil {
		return err
	}
	kubeconfig, err := e.daemonToken(ctx, n)
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig, "--node-name=" + n.Name,
		"--socket=" + n.Socket, "--sysfs-root=" + n.SysfsRoot,
		"--checkpoint-dir=" + n.checkpointDir(), "--devinfo-root=" + n.devinfoRoot,
		"--node-netns=" + n.NetNS, "--parent-interface=" + NodeNIC, "--primary",
		"--metrics-bind-address=" + loopback(ports[0]), "--metrics-secure=false", "--health-probe-bind-address=" + loopback(ports[1]),
		"--device-timeout=10s",
	}
	if e.opts.Pprof && n.real == nil {
		args = append(args, "--pprof-bind-address="+loopback(ports[2]))
	}
	bin := filepath.Join(e.binDir, "kuryr-daemon")
	if n.real != nil {
		// In the node's mount namespace, so that it sees the pod network
		// namespaces containerd mounts under /run/containerd.
		n.Daemon = e.newProcess("kuryr-daemon-"+n.Name, "nsenter", append([]string{"--mount=" + n.real.mountNS, "--", bin}, args...), nil)
	} else {
		n.Daemon = e.newProcess("kuryr-daemon-"+n.Name, bin, args, nil)
	}
	n.DaemonProbes = "http://" + loopback(ports[1])
	if err := e.startProc(n.Daemon); err != nil {
		return err
	}
	return e.waitDaemon(ctx, n)
}

func (e *Env) waitDaemon(ctx context.Context, n *Node) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- cniapi.NewClient(n.Socket).WaitReady(ctx, 60*time.Second) }()
	exited, exitErr := n.Daemon.Exited()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("kuryr-daemon of %s not ready: %w; its log ends:%s", n.Name, err, n.Daemon.Tail(15))
		}
		e.logf("kuryr-daemon of %s ready (log %s)", n.Name, n.Daemon.Log)
		return nil
	case <-exited:
		return fmt.Errorf("kuryr-daemon of %s exited while starting (%v); its log ends:%s", n.Name, exitErr(), n.Daemon.Tail(15))
	}
}

// RestartDaemon stops node's kuryr-daemon (SIGTERM; killed with crash) and
// starts it again. On a real node it is the DaemonSet's pod: deleted (or
// its process killed, with crash) and waited for until it serves again
// (restart.go).
func (e *Env) RestartDaemon(ctx context.Context, n *Node, crash bool) error {
	if n.real != nil && !e.opts.NoKuryr {
		return e.restartDaemonPod(ctx, n, crash)
	}
	if n.Daemon == nil {
		return fmt.Errorf("restart kuryr-daemon of %s: environment %s runs none", n.Name, e.ID)
	}
	var err error
	if crash {
		err = n.Daemon.kill()
	} else {
		err = n.Daemon.stop(10 * time.Second)
	}
	if err != nil {
		return err
	}
	if err := n.Daemon.start(); err != nil {
		return err
	}
	return e.waitDaemon(ctx, n)
}

// createdTracker remembers when each pod was first seen by a cluster-wide
// watch, to the millisecond (creationTimestamp has seconds only).
type createdTracker struct {
	mu sync.Mutex
	at map[types.UID]time.Time
}

func newCreatedTracker(ctx context.Context, cs kubernetes.Interface) *createdTracker {
	t := &createdTracker{at: map[types.UID]time.Time{}}
	f := informers.NewSharedInformerFactory(cs, 0)
	inf := f.Core().V1().Pods().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			t.observe(p.UID, time.Now())
		}
	}})
	f.Start(ctx.Done())
	return t
}

// observe records at for uid unless an earlier time is known.
func (t *createdTracker) observe(uid types.UID, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.at[uid]; !ok || at.Before(old) {
		t.at[uid] = at
	}
}

func (t *createdTracker) get(uid types.UID) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[uid]
	return at, ok
}

// CreatePod creates pod and records the time just before the call as its
// creation time (for the time to network-ready). It first waits for the
// pod's ServiceAccount, which the ServiceAccount admission plugin requires
// (a new namespace gets "default" a moment after its creation).
func (e *Env) CreatePod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	if err := e.WaitServiceAccount(ctx, pod.Namespace, sa); err != nil {
		return nil, err
	}
	at := time.Now()
	out, err := e.Clientset.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	e.created.observe(out.UID, at)
	return out, nil
}

// Node returns the node named name, or nil.
func (e *Env) Node(name string) *Node {
	for _, n := range e.Nodes {
		if n.Name == name || strings.TrimPrefix(n.Name, "node-") == name {
			return n
		}
	}
	return nil
}

// OpenStackClient is a client of the simulated cloud through Keystone, as
// kuryr-controller has one (for tests to look at or act on the cloud).
func (e *Env) OpenStackClient(ctx context.Context) (*openstack.Client, error) {
	c := e.Cloud.Credentials()
	return openstack.New(ctx, openstack.Config{AuthURL: e.Cloud.AuthURL(), Username: c.UserName, Password: c.Password,
		UserDomainName: c.DomainName, ProjectName: c.ProjectName, ProjectDomainName: c.DomainName, Region: c.Region})
}

// WaitServiceAccount waits until ServiceAccount namespace/name exists (the
// ServiceAccount admission plugin refuses pods of a missing one).
func (e *Env) WaitServiceAccount(ctx context.Context, namespace, name string) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = e.Clientset.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("ServiceAccount %s/%s (kube-controller-manager makes default ones): %w", namespace, name, errors.Join(err, last))
	}
	return nil
}
