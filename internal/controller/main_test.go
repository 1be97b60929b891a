package controller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, testenv.Options{CRDDirectoryPaths: []string{"../../deploy/crds", "../../deploy/third-party"}}))
}

var scheme = func() *runtime.Scheme {
	s, err := cmdutil.Scheme()
	if err != nil {
		panic(err)
	}
	return s
}()

var seq atomic.Int64

// fixture is one test's world: its own namespace, cluster ID, simulated
// cloud and nodes, on the shared API server.
type fixture struct {
	t         *testing.T
	ctx       context.Context
	c         client.Client
	sim       *cloudsim.Cloud
	cloud     *openstack.Client
	ns        string
	clusterID string
	opts      Options
	podSubnet string
	mgmtNet   cloudsim.Subnet
	dpNet     cloudsim.Subnet
	sg        string
	servers   map[string]cloudsim.SeededServer // by node name
	calls     atomic.Int64                     // OpenStack requests made by the controller
	rec       atomic.Pointer[PodReconciler]    // the running controller's reconciler
	writes    atomic.Int64                     // OpenStack writes in flight, as the controller's client sees them
	maxWrites atomic.Int64                     // the most writes ever in flight at once
	// ownNamespace limits the controllers' informers to the fixture's
	// namespace, so that fixtures can run controllers side by side.
	ownNamespace bool
	// noGC starts controllers without their garbage collector: what is
	// left in the cloud is then what the pods' own release paths left.
	noGC bool
}

func newFixture(t *testing.T, nodes int) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := seq.Add(1)
	f := &fixture{t: t, ctx: ctx, ns: fmt.Sprintf("t%d", n), clusterID: fmt.Sprintf("cluster-%d", n), servers: map[string]cloudsim.SeededServer{}}

	f.sim = cloudsim.New(cloudsim.Options{Seed: uint64(n)})
	if err := f.sim.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatalf("start simulated cloud: %v", err)
	}
	t.Cleanup(f.sim.Close)
	_, workers, err := f.sim.SeedNetwork("workers", "10.0.0.0/24")
	must(t, err)
	_, pods, err := f.sim.SeedNetwork("pods", "10.1.0.0/16")
	must(t, err)
	_, f.mgmtNet, err = f.sim.SeedNetwork("mgmt", "10.2.0.0/24")
	must(t, err)
	_, f.dpNet, err = f.sim.SeedNetwork("dataplane", "10.3.0.0/24")
	must(t, err)
	f.podSubnet = pods.ID
	f.sg = f.sim.SeedSecurityGroup("pods").ID

	f.cloud = f.newCloudClient(5 * time.Second)

	f.c, err = client.New(env.Config, client.Options{Scheme: scheme})
	must(t, err)
	must(t, f.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}))
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("%s-node-%d", f.ns, i)
		srv, err := f.sim.SeedServer(cloudsim.ServerSpec{Name: name, SubnetID: workers.ID, Trunk: true})
		must(t, err)
		f.servers[name] = srv
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: "openstack:///" + srv.Server.ID}}
		must(t, f.c.Create(ctx, node))
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: srv.ParentPort.FixedIPs[0].IPAddress}}
		must(t, f.c.Status().Update(ctx, node))
	}
	f.opts = Defaults()
	f.opts.ClusterID = f.clusterID
	f.opts.ClusterUID, err = ReadClusterUID(ctx, f.c)
	must(t, err)
	f.opts.Primary = true
	f.opts.PodSubnetID = pods.ID
	f.opts.PodSecurityGroups = []string{f.sg}
	f.opts.WorkerSubnetIDs = []string{workers.ID}
	f.opts.GCPeriod = Duration{time.Hour}
	f.opts.ActiveTimeout = Duration{30 * time.Second}
	return f
}

// newCloudClient returns a client of the simulated cloud (at its current
// base URL) whose requests count in f.calls.
func (f *fixture) newCloudClient(timeout time.Duration) *openstack.Client {
	f.t.Helper()
	creds := f.sim.Credentials()
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		f.calls.Add(1)
		if r.Method != http.MethodGet && !strings.Contains(r.URL.Path, "/identity/") {
			n := f.writes.Add(1)
			defer f.writes.Add(-1)
			for m := f.maxWrites.Load(); n > m && !f.maxWrites.CompareAndSwap(m, n); m = f.maxWrites.Load() {
			}
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	c, err := openstack.New(f.ctx, openstack.Config{AuthURL: f.sim.AuthURL(), Username: creds.UserName, Password: creds.Password,
		UserDomainName: creds.DomainName, ProjectName: creds.ProjectName, ProjectDomainName: creds.DomainName,
		RequestTimeout: timeout, HTTPClient: hc})
	must(f.t, err)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startController runs a controller (manager, reconciler, GC) until the
// returned stop is called or the test ends.
func (f *fixture) startController() (stop func()) {
	f.t.Helper()
	return f.startControllerAs(env.Config, false)
}

// startControllerAs runs a controller with the given identity, optionally
// with leader election (a Lease in kuryr-dpdk, as deployed).
func (f *fixture) startControllerAs(cfg *rest.Config, leaderElect bool) (stop func()) {
	f.t.Helper()
	stop, err := f.runController(cfg, leaderElect)
	must(f.t, err)
	return stop
}

// runController is startControllerAs that returns the controller's set-up
// error.
func (f *fixture) runController(cfg *rest.Config, leaderElect bool) (stop func(), err error) {
	f.t.Helper()
	skip := true
	cache := CacheOptions() // as deployed: the tests run on the trimmed cache
	if f.ownNamespace {
		cache.DefaultNamespaces = map[string]crcache.Config{f.ns: {}}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cache,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		Controller:              config.Controller{SkipNameValidation: &skip},
		LeaderElection:          leaderElect,
		LeaderElectionID:        "kuryr-controller-" + f.ns,
		LeaderElectionNamespace: "kuryr-dpdk",
	})
	if err != nil {
		return nil, err
	}
	// As deployed, the manager reads the cluster's UID with the
	// controller's identity (once it leads), before it reconciles.
	opts := f.opts
	opts.ClusterUID = ""
	r := NewPodReconciler(mgr.GetClient(), f.cloud, mgr.GetEventRecorder("kuryr-controller"), opts, nil)
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	f.rec.Store(r)
	if !f.noGC {
		if err := mgr.Add(NewGarbageCollector(r)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once atomic.Bool
	stop = func() {
		if once.Swap(true) {
			return
		}
		// controller-runtime v0.25.2 cannot stop a manager whose caches
		// never synced (its start loop spins on the closed context): let
		// them sync first. A test that took a permission away gives it
		// back before this runs.
		if f.ownNamespace {
			sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
			mgr.GetCache().WaitForCacheSync(sctx)
			scancel()
		}
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("controller stopped with: %v", err)
		}
		select {
		case <-r.identified:
			if cfg.Host == env.Config.Host && r.opts.ClusterUID != f.opts.ClusterUID {
				f.t.Errorf("the controller read cluster UID %q, kube-system's is %q", r.opts.ClusterUID, f.opts.ClusterUID)
			}
		default: // a standby that never led
		}
	}
	f.t.Cleanup(stop)
	return stop, nil
}

func (f *fixture) createNAD(name, config string, annotations map[string]string) {
	f.t.Helper()
	must(f.t, f.c.Create(f.ctx, &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, Annotations: annotations},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}))
}

func (f *fixture) standardNADs() {
	f.createNAD("mgmt", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"mgmt","type":"kuryr-cni","driver":"nested-vlan","subnetId":%q,"securityGroups":[%q]}`, f.mgmtNet.ID, f.sg), nil)
	f.createNAD("dataplane", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dataplane","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q}`, f.dpNet.ID), nil)
}

func (f *fixture) createPod(name, node, networks string) *corev1.Pod {
	f.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "vnf", Image: "vnf:1"}}},
	}
	if networks != "" {
		p.Annotations = map[string]string{v1alpha1.NetworksAnnotation: networks}
	}
	must(f.t, f.c.Create(f.ctx, p))
	return p
}

// deletePod deletes a pod as the kubelet finally does (grace period 0); the
// object stays until the controller has released it and dropped its finalizer.
func (f *fixture) deletePod(name string) {
	f.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}}
	if err := f.c.Delete(f.ctx, p, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		f.t.Fatalf("delete pod %s: %v", name, err)
	}
}

// eventually polls cond (the test side's view; the code under test is
// event-driven) until it holds or timeout passes, then fails with what it
// last saw. Long waits poll less often.
func (f *fixture) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	f.t.Helper()
	if err := waitFor(f.ctx, timeout, what, cond); err != nil {
		f.t.Fatal(err)
	}
}

// waitFor is eventually that returns its failure, and stops early when ctx
// ends.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	every := 50 * time.Millisecond
	if timeout > time.Minute {
		every = 250 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting for %s: %w; last seen: %s", what, ctx.Err(), last)
		case <-time.After(every):
		}
	}
	return fmt.Errorf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
}

func (f *fixture) kuryrPod(name string) (*v1alpha1.KuryrPod, error) {
	kp := &v1alpha1.KuryrPod{}
	err := f.c.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: name}, kp)
	return kp, err
}

func (f *fixture) waitReady(name string) *v1alpha1.KuryrPod {
	f.t.Helper()
	kp, err := f.readyWithin(f.ctx, name)
	must(f.t, err)
	return kp
}

// readyWithin is waitReady that returns its failure.
func (f *fixture) readyWithin(ctx context.Context, name string) (*v1alpha1.KuryrPod, error) {
	var kp *v1alpha1.KuryrPod
	err := waitFor(ctx, 20*time.Second, "KuryrPod "+name+" Ready", func() (bool, string) {
		var err error
		kp, err = f.kuryrPod(name)
		if err != nil {
			return false, err.Error()
		}
		return meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionReady), fmt.Sprintf("%+v", kp.Status)
	})
	return kp, err
}

func (f *fixture) waitGone(name string) {
	f.t.Helper()
	must(f.t, f.goneWithin(f.ctx, name))
}

// goneWithin is waitGone that returns its failure.
func (f *fixture) goneWithin(ctx context.Context, name string) error {
	return waitFor(ctx, 20*time.Second, "pod and KuryrPod "+name+" gone", func() (bool, string) {
		_, kerr := f.kuryrPod(name)
		perr := f.c.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: name}, &corev1.Pod{})
		return apierrors.IsNotFound(kerr) && apierrors.IsNotFound(perr), fmt.Sprintf("KuryrPod: %v, pod: %v", kerr, perr)
	})
}

// ourPorts are the ports in the cloud tagged with this test's cluster ID.
func (f *fixture) ourPorts() []cloudsim.Port {
	var out []cloudsim.Port
	for _, p := range f.sim.Ports() {
		if slices.Contains(p.Tags, clusterTag(f.clusterID)) {
			out = append(out, p)
		}
	}
	return out
}

// leftovers describes any port, subport or attachment of ours in the cloud.
func (f *fixture) leftovers() string {
	var b strings.Builder
	for _, p := range f.ourPorts() {
		fmt.Fprintf(&b, "port %s (%s, device %s %s); ", p.ID, p.Name, p.DeviceOwner, p.DeviceID)
	}
	for _, srv := range f.servers {
		subs, ok := f.sim.Subports(srv.TrunkID)
		if !ok {
			fmt.Fprintf(&b, "trunk %s of %s not found: its subports cannot be counted; ", srv.TrunkID, srv.Server.Name)
		}
		for _, s := range subs {
			fmt.Fprintf(&b, "subport %s vlan %d on %s; ", s.PortID, s.SegmentationID, srv.Server.Name)
		}
	}
	for _, p := range f.sim.Ports() {
		for _, srv := range f.servers {
			if p.DeviceID == srv.Server.ID && p.ID != srv.ParentPort.ID {
				fmt.Fprintf(&b, "attachment %s on %s; ", p.ID, srv.Server.Name)
			}
		}
	}
	return b.String()
}

func (f *fixture) events(object string) []string {
	var list corev1.EventList
	must(f.t, f.c.List(f.ctx, &list, client.InNamespace(f.ns)))
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == object {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

// openstackPortSpec is a port as a controller made it for interface net9
// of pod uid, with the cluster's tags given.
func openstackPortSpec(networkID, subnetID string, clusterTags []string, uid string) openstack.PortSpec {
	return openstack.PortSpec{NetworkID: networkID, SubnetID: subnetID, Name: "leftover",
		Tags: append(slices.Clone(clusterTags), tagPrefixPod+uid, tagPrefixIfName+"net9")}
}
