package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

var _ cniapi.Handler = (*Daemon)(nil)

// Daemon serves the CNI for one node. It implements cniapi.Handler.
type Daemon struct {
	opts Options
	// client reads from the informer cache (this node's pods and
	// KuryrPods only) and writes to the API server.
	client client.Client
	// reader reads from the API server itself (the node, fresh objects
	// for read-modify-write).
	reader client.Reader
	// bindings plug, check and unplug interfaces and keep their
	// checkpoints.
	bindings *binding.Set
	waiters  *waiters
	metrics  *metrics
	synced   func() bool
	// reconciled is closed when the start-up reconcile is done
	// (ReconcileAtStart).
	reconciled chan struct{}
	// startupWait is how long a CNI request waits for it (StartupWait).
	startupWait time.Duration
	// api is what the last probe of the API server found
	// (WatchAPIServer).
	api apiServerState
	log logr.Logger

	parentMu sync.Mutex
	parent   string

	// keeper keeps the node's pre-attached DPDK devices idle (pool.go).
	keeper *binding.IdleKeeper
	// labelKick wakes LabelNode when the KuryrNode changes.
	labelKick chan struct{}
	// nodeMu guards what the daemon knows of its node: the KuryrNode's
	// status as last seen, and the Node's addresses.
	nodeMu     sync.Mutex
	nodeStatus v1alpha1.KuryrNodeStatus
	nodeAddrs  []net.IP
}

// New builds a daemon. c should read from a cache restricted to this node
// (see CacheOptions); reader reads from the API server. It serves no CNI
// request before ReconcileAtStart has run.
func New(opts Options, c client.Client, reader client.Reader, reg prometheus.Registerer, log logr.Logger) (*Daemon, error) {
	d := &Daemon{
		opts: opts, client: c, reader: reader,
		waiters: newWaiters(), metrics: newMetrics(reg), synced: func() bool { return false }, log: log,
		reconciled: make(chan struct{}), startupWait: StartupWait, labelKick: make(chan struct{}, 1),
	}
	d.keeper = binding.NewIdleKeeper(binding.IdleOptions{
		Node: binding.KernelOptions{ParentNetns: opts.NodeNetns, Parent: d.findParentLink}, Log: log.WithName("pool"),
	})
	var err error
	d.bindings, err = binding.New(binding.Options{
		SysfsRoot: opts.SysfsRoot, CheckpointDir: opts.CheckpointDir, ClaimCheckpointDir: opts.DRACheckpointDir, DevInfoRoot: opts.DevInfoRoot,
		DeviceTimeout: opts.DeviceTimeout,
		Kernel:        binding.KernelOptions{ParentNetns: opts.NodeNetns, Parent: d.parentLink},
		OnSetAside:    d.checkpointSetAside,
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint directory %s: %w", opts.CheckpointDir, err)
	}
	return d, nil
}

// Watch hooks the daemon to the informers of c: every KuryrPod change wakes
// the ADDs waiting for it; every change of the node's KuryrNode goes to
// the pool's idle keeper and the node's labels. Call it before the cache
// starts.
func (d *Daemon) Watch(ctx context.Context, c cache.Cache) error {
	inf, err := c.GetInformer(ctx, &v1alpha1.KuryrPod{})
	if err != nil {
		return fmt.Errorf("KuryrPod informer: %w", err)
	}
	wake := func(obj any) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if o, ok := obj.(client.Object); ok {
			d.waiters.changed(types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()})
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: wake, UpdateFunc: func(_, n any) { wake(n) }, DeleteFunc: wake,
	}); err != nil {
		return fmt.Errorf("watch KuryrPods: %w", err)
	}
	kn, err := c.GetInformer(ctx, &v1alpha1.KuryrNode{})
	if err != nil {
		return fmt.Errorf("KuryrNode informer: %w", err)
	}
	node := func(obj any) {
		if o, ok := obj.(*v1alpha1.KuryrNode); ok && o.Name == d.opts.NodeName {
			d.nodeChanged(o)
		}
	}
	if _, err := kn.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: node, UpdateFunc: func(_, n any) { node(n) }, DeleteFunc: func(any) { d.nodeChanged(nil) },
	}); err != nil {
		return fmt.Errorf("watch KuryrNodes: %w", err)
	}
	d.synced = func() bool { return inf.HasSynced() && kn.HasSynced() }
	return nil
}

// Ready says whether the daemon can serve ADDs: its informers have synced,
// its start-up reconcile is done, and the API server answers its probes
// (WatchAPIServer; an ADD must record what it plugged).
func (d *Daemon) Ready() error {
	// An unreachable API server first: it is why a daemon started during an
	// outage has neither synced nor reconciled.
	if err := d.api.unreachable(time.Now()); err != nil {
		return err
	}
	if !d.synced() {
		return errors.New("kuryr-daemon is starting: informers not synced yet")
	}
	select {
	case <-d.reconciled:
	default:
		return errReconciling
	}
	return nil
}

// CacheOptions restrict the daemon's informers to its own node: pods by
// spec.nodeName, KuryrPods by their node label, the KuryrNode by name.
func CacheOptions(node string) cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:         {Field: fieldSelector("spec.nodeName", node)},
		&v1alpha1.KuryrPod{}:  {Label: labelSelector(v1alpha1.NodeLabel, node)},
		&v1alpha1.KuryrNode{}: {Field: fieldSelector("metadata.name", node)},
	}}
}

// all says whether a call covers every interface of the pod (the primary
// CNI's eth0 call) rather than the one it names (a Multus delegate call).
func (d *Daemon) all(req *cniapi.Request) bool {
	return d.opts.Primary && req.NetConf != nil && req.NetConf.Driver == "" && req.NetConf.SubnetID == ""
}

// parentLink finds the VM's NIC once: the override, else the link with the
// MAC of the VM's Neutron port (the node's KuryrNode, written by the
// controller), else the link holding the node's InternalIP, in the node's
// network namespace (binding.KernelParent). Not finding it is "try again
// later" (CNI code 11).
func (d *Daemon) parentLink(ctx context.Context) (string, error) {
	name, err := d.findParentLink(ctx)
	if err != nil {
		return "", cniErr(cniapi.CodeTryAgainLater, "%v", err)
	}
	return name, nil
}

func (d *Daemon) findParentLink(ctx context.Context) (string, error) {
	d.parentMu.Lock()
	defer d.parentMu.Unlock()
	if d.parent != "" {
		return d.parent, nil
	}
	var nodeIP net.IP
	if d.opts.ParentInterface == "" {
		var node corev1.Node
		if err := d.reader.Get(ctx, types.NamespacedName{Name: d.opts.NodeName}, &node); err != nil {
			return "", fmt.Errorf("get node %s to find its NIC: %w", d.opts.NodeName, err)
		}
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				nodeIP = net.ParseIP(a.Address)
			}
		}
		if nodeIP == nil {
			return "", fmt.Errorf("node %s has no InternalIP to find its NIC by; set --parent-interface", d.opts.NodeName)
		}
	}
	d.nodeMu.Lock()
	parentMAC := d.nodeStatus.ParentMAC
	d.nodeMu.Unlock()
	mac, _ := net.ParseMAC(parentMAC) // none or unreadable: by the node's IP
	name, err := binding.KernelParent(d.opts.NodeNetns, d.opts.ParentInterface, mac, nodeIP)
	if err != nil {
		return "", fmt.Errorf("find the VM's NIC: %w", err)
	}
	d.parent = name
	return name, nil
}

// Reasons a checkpoint was set aside, as counted in
// kuryr_daemon_checkpoints_set_aside_total.
const (
	setAsideCorrupt        = "corrupt"
	setAsideNewerSchema    = "newer_schema"
	setAsideDeviceMismatch = "device_mismatch"
	setAsideOther          = "other"
)

// checkpointSetAside logs and counts a checkpoint the bindings set aside:
// one that is corrupt or whose device is not as it says (moved to the
// quarantine directory) or of a newer schema (left in place). No other
// attachment's DEL, CHECK or GC waits on it.
func (d *Daemon) checkpointSetAside(r checkpoint.SetAsideReport) {
	reason := setAsideOther
	switch {
	case errors.Is(r.Reason, checkpoint.ErrCorrupt):
		reason = setAsideCorrupt
	case errors.Is(r.Reason, checkpoint.ErrNewerSchema):
		reason = setAsideNewerSchema
	case errors.Is(r.Reason, binding.ErrDeviceMismatch):
		reason = setAsideDeviceMismatch
	}
	d.metrics.setAside.WithLabelValues(reason).Inc()
	if r.To == "" {
		d.log.Error(r.Reason, "Left a checkpoint this daemon cannot read in place", "file", r.File, "dir", d.opts.CheckpointDir, "reason", reason)
		return
	}
	d.log.Error(r.Reason, "Set a checkpoint aside", "file", r.File, "to", r.To, "reason", reason)
}

// observe records a request in the metrics.
func (d *Daemon) observe(verb, driver string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = strconv.Itoa(int(cniapi.AsCNIError(err).Code))
	}
	d.metrics.requests.WithLabelValues(verb, driver, result).Inc()
	d.metrics.duration.WithLabelValues(verb).Observe(time.Since(start).Seconds())
}

// cniErr builds a CNI error with a code and a message that says what to do.
func cniErr(code uint, format string, args ...any) *cnitypes.Error {
	return cnitypes.NewError(code, fmt.Sprintf(format, args...), "")
}
