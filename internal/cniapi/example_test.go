package cniapi_test

import (
	"context"
	"os/signal"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// daemon is a Handler that knows nothing yet.
type daemon struct{}

func (daemon) Add(_ context.Context, req *cniapi.Request) (types.Result, error) {
	if req.Args.PodName == "" {
		return nil, types.NewError(cniapi.CodeBadConfig, "invalid CNI_ARGS: no K8S_POD_NAME", "")
	}
	return &current.Result{Interfaces: []*current.Interface{{Name: req.IfName, Sandbox: req.Netns}}}, nil
}
func (daemon) Check(context.Context, *cniapi.Request) error  { return nil }
func (daemon) Del(context.Context, *cniapi.Request) error    { return nil }
func (daemon) Status(context.Context, *cniapi.Request) error { return nil }
func (daemon) GC(context.Context, *cniapi.Request) error     { return nil }

// How kuryr-daemon serves the shim: listen (mode 0600), serve until
// SIGTERM, report not-ready on /healthz until its informers have synced.
func ExampleServer() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ln, err := cniapi.Listen(cniapi.DefaultSocketPath)
	if err != nil {
		panic(err)
	}
	synced := func() error { return nil }
	_ = cniapi.NewServer(daemon{}, cniapi.WithReadiness(synced)).Serve(ctx, ln)
}
