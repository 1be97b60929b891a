// Package cmdutil holds what the kuryr-dpdk binaries' main functions share:
// the API scheme they speak and their logging flags.
package cmdutil

import (
	"flag"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
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
