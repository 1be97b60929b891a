// Package cmdutil holds what the kuryr-dpdk binaries' main functions share:
// the API scheme they speak, their logging and Kubernetes client flags, and
// the run of a long-running binary (Command). Package cmdutil/manager
// builds the controller-runtime manager of kuryr-controller and
// kuryr-daemon.
package cmdutil

import (
	"flag"
	"fmt"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Scheme returns a scheme with the built-in types, kuryr-dpdk's own
// (KuryrPod, KuryrNode) and NetworkAttachmentDefinitions.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, nadv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// AddKlogFlags registers klog's flags (-v, -logtostderr, ...) on fs.
func AddKlogFlags(fs *flag.FlagSet) {
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	klogFlags.VisitAll(func(fl *flag.Flag) { fs.Var(fl.Value, fl.Name, fl.Usage) })
}

// KubeClient holds the flags of a binary's Kubernetes client.
type KubeClient struct {
	Kubeconfig string
	QPS        float64
	Burst      int
	// Compression asks the API server for gzip-compressed responses.
	Compression bool
}

// AddFlags registers --kubeconfig, --kube-api-qps, --kube-api-burst and
// --kube-api-compression on fs with the given defaults. client-go's own
// default (5 requests/s, burst 10) throttled the controller at about 1.6
// pods/s in the benchmarks.
//
// Compression is off by default: the controller and the daemons reach the
// API server over the cluster's network, where gzip costs both ends CPU
// for little, and each compressed watch stream holds a decompressor in the
// client (about 0.4 MiB of the controller's heap in all; docs/benchmarks.md).
func (k *KubeClient) AddFlags(fs *flag.FlagSet, qps float64, burst int) {
	k.QPS, k.Burst = qps, burst
	fs.StringVar(&k.Kubeconfig, "kubeconfig", "", "kubeconfig file (in-cluster configuration when empty)")
	fs.Float64Var(&k.QPS, "kube-api-qps", qps, "requests per second to the Kubernetes API (client-side limit)")
	fs.IntVar(&k.Burst, "kube-api-burst", burst, "burst of requests to the Kubernetes API above --kube-api-qps")
	fs.BoolVar(&k.Compression, "kube-api-compression", false, "ask the Kubernetes API server for gzip-compressed responses (for a slow link to it)")
}

// Config builds the client configuration.
func (k *KubeClient) Config() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(k.QPS), k.Burst
	cfg.DisableCompression = !k.Compression
	return cfg, nil
}
