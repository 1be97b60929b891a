package dra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// Driver is the DRA kubelet plugin of one node.
type Driver struct {
	opts   Options
	cfg    *rest.Config
	kube   kubernetes.Interface
	scheme *runtime.Scheme
	log    logr.Logger

	sys   *pci.SysFS
	store *checkpoint.Store
	dpdk  *binding.DPDK
	cdi   *cdi.Cache
	node  *nodeReader
	// live reads the node's KuryrNode from the API server (opts.NodeReader,
	// or a client of the driver's own).
	live client.Reader
	// devInfoDir is the NPWG device-plugin directory the device-info
	// files go to.
	devInfoDir string

	publish chan struct{} // one pending republish
	metrics *metrics
}

var _ kubeletplugin.DRAPlugin = (*Driver)(nil)

// New builds the driver. cfg and kube talk to the API server as the
// daemon; scheme knows the project's API types.
func New(opts Options, cfg *rest.Config, kube kubernetes.Interface, scheme *runtime.Scheme, log logr.Logger) (*Driver, error) {
	if opts.NodeName == "" {
		return nil, errors.New("dra: no node name")
	}
	store, err := checkpoint.New(opts.CheckpointDir)
	if err != nil {
		return nil, err
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(opts.CDIDir), cdi.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("CDI spec directory %s: %w", opts.CDIDir, err)
	}
	live := opts.NodeReader
	if live == nil {
		if live, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
			return nil, fmt.Errorf("API server client: %w", err)
		}
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	sys := pci.New(opts.SysfsRoot, pci.WithBindTimeout(opts.DeviceTimeout))
	devInfoDir := filepath.Join(opts.DevInfoRoot, binding.DeviceInfoDPDir)
	d := &Driver{
		opts: opts, cfg: cfg, kube: kube, scheme: scheme, log: log,
		sys: sys, store: store, cdi: cache, live: live, devInfoDir: devInfoDir,
		dpdk: binding.NewDPDK(sys, store, binding.DPDKOptions{
			DeviceTimeout: opts.DeviceTimeout, DevInfoDir: devInfoDir,
		}),
		publish: make(chan struct{}, 1),
		metrics: m,
	}
	d.node = newNodeReader(d.republish)
	return d, nil
}

var errStopped = errors.New("DRA driver stopped")

// republish asks the publish loop for one more round.
func (d *Driver) republish() {
	select {
	case d.publish <- struct{}{}:
	default:
	}
}

// Run serves the kubelet and publishes the node's devices until ctx ends:
// it watches the node's KuryrNode and its PCI bus, starts the kubelet
// plugin (registration and DRA sockets) and republishes on every change.
func (d *Driver) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(errStopped)
	ctx = klog.NewContext(ctx, d.log) // the kubeletplugin helper logs through it
	if err := d.node.run(ctx, d.opts.NodeCache, d.cfg, d.scheme, d.opts.NodeName); err != nil {
		return err
	}
	if err := watchPCI(ctx, d.opts.SysfsRoot, d.republish); err != nil {
		return err
	}
	// The kubelet makes its plugin registry, not the plugin's directory:
	// on a node's first start there is none, and the DRA socket cannot be
	// made in it.
	if err := os.MkdirAll(d.opts.PluginDir, 0o750); err != nil {
		return fmt.Errorf("DRA plugin directory: %w", err)
	}
	helper, err := kubeletplugin.Start(ctx, d,
		kubeletplugin.DriverName(DriverName),
		kubeletplugin.KubeClient(d.kube),
		kubeletplugin.NodeName(d.opts.NodeName),
		kubeletplugin.PluginDataDirectoryPath(d.opts.PluginDir),
		kubeletplugin.RegistrarDirectoryPath(d.opts.RegistrarDir),
		kubeletplugin.HealthService(false),
	)
	if err != nil {
		return fmt.Errorf("start the DRA kubelet plugin: %w", err)
	}
	defer helper.Stop()
	d.log.Info("DRA kubelet plugin started", "driver", DriverName, "node", d.opts.NodeName, "pluginDir", d.opts.PluginDir)
	d.republish()
	t := time.NewTicker(d.opts.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.publish:
		}
		if err := d.publishOnce(ctx, helper); err != nil {
			d.log.Error(err, "Publishing the node's DPDK devices failed; retrying at the next change or resync")
		}
	}
}

func (d *Driver) publishOnce(ctx context.Context, helper *kubeletplugin.Helper) error {
	node, _ := d.node.snapshot()
	recs, err := d.store.List()
	if err != nil {
		d.log.Error(err, "Reading the DRA checkpoints for publishing")
	}
	devices, skipped, err := Devices(node, d.sys, recs)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		d.log.V(1).Info("DPDK device not published", "portID", s.PortID, "reason", s.Reason)
	}
	d.log.V(1).Info("Publishing the node's DPDK devices", "devices", len(devices))
	return helper.PublishResources(ctx, Resources(d.opts.NodeName, devices))
}

// HandleError logs errors of the plugin's background work (publishing,
// the gRPC servers); the helper retries what can be retried.
func (d *Driver) HandleError(_ context.Context, err error, msg string) {
	d.log.Error(err, msg, "recoverable", errors.Is(err, kubeletplugin.ErrRecoverable))
}

// WatchHealthStatus is not served (the health service is off).
func (d *Driver) WatchHealthStatus(context.Context, chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}
