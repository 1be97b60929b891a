package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// Bounds of the shim's waits for the daemon.
const (
	// daemonWait is how long ADD, CHECK, DEL and GC wait for a daemon that
	// is not (yet) listening, e.g. during its rolling restart.
	daemonWait = 10 * time.Second
	// statusWait bounds STATUS, which must answer quickly.
	statusWait = 2 * time.Second
)

// shim forwards CNI calls to the daemon. Its only output on stdout is the
// result; diagnostics go to stderr.
type shim struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	wait   time.Duration
	// nodeDir holds the node-local file that names the daemon's socket
	// (cniapi.NodeConfigName): the shim's own directory.
	nodeDir string
}

func newShim(ctx context.Context, stdout, stderr io.Writer, nodeDir string) *shim {
	return &shim{ctx: ctx, stdout: stdout, stderr: stderr, wait: daemonWait, nodeDir: nodeDir}
}

func (s *shim) funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: s.add, Check: s.check, Del: s.del, Status: s.status, GC: s.gc}
}

// request builds the daemon request from the CNI call, validating the
// configuration and CNI_ARGS here so that a bad one is code 7 even when the
// daemon is down.
//
// The daemon's socket comes from the node-local file in the shim's
// directory (default /run/kuryr-dpdk/cni.sock), never from the
// configuration: a daemonSocket there that names another socket is code 7.
//
// DEL is best effort (CNI spec 1.1): a prevResult that does not parse is
// dropped, CNI_ARGS pairs that do not parse are left out, and a
// daemonSocket naming another socket is ignored, each said on stderr; the
// daemon undoes the attachment by container ID and interface name alone.
func (s *shim) request(cmd string, args *skel.CmdArgs) (*cniapi.Request, *cniapi.Client, error) {
	conf, cerr := cniapi.ParseNetConfFor(cmd, args.StdinData)
	if cerr != nil {
		return nil, nil, cerr
	}
	node := cniapi.NodeConfig{DaemonSocket: cniapi.DefaultSocketPath}
	from := "the default"
	if s.nodeDir != "" {
		if node, cerr = cniapi.LoadNodeConfig(s.nodeDir); cerr != nil {
			return nil, nil, cerr
		}
		from = filepath.Join(s.nodeDir, cniapi.NodeConfigName) + " or the default"
	}
	sockErr := conf.CheckDaemonSocket(node, from)
	if sockErr != nil && cmd != cniapi.CmdDel {
		return nil, nil, sockErr
	}
	parseArgs := cniapi.ParseCNIArgs
	if cmd == cniapi.CmdDel {
		parseArgs = cniapi.ParseCNIArgsBestEffort
	}
	cargs, cerr := parseArgs(args.Args)
	if cerr != nil && cmd != cniapi.CmdDel {
		return nil, nil, cerr
	}
	for _, e := range []*types.Error{cerr, conf.PrevResultErr, sockErr} {
		if e != nil {
			fmt.Fprintf(s.stderr, "kuryr-cni: DEL of container %s ifname %s: ignoring %s\n", args.ContainerID, args.IfName, e.Msg)
		}
	}
	req := &cniapi.Request{
		Command:     cmd,
		ContainerID: args.ContainerID,
		Netns:       args.Netns,
		IfName:      args.IfName,
		Args:        cargs,
		Path:        args.Path,
		Config:      args.StdinData,
		NetConf:     conf,
	}
	return req, cniapi.NewClient(node.DaemonSocket), nil
}

// notReachable is code 11 for a daemon that does not answer.
func notReachable(code uint, err error) *types.Error {
	var ue *cniapi.UnreachableError
	if errors.As(err, &ue) {
		return types.NewError(code, fmt.Sprintf("kuryr-daemon not reachable at %s: is it running?", ue.Path), ue.Err.Error())
	}
	var ne *cniapi.NotReadyError
	if errors.As(err, &ne) {
		return types.NewError(code, ne.Error(), "")
	}
	return cniapi.AsCNIError(err)
}

// send waits up to s.wait for the daemon to listen (ready for ADD and
// CHECK, merely listening for DEL and GC), then sends req.
func (s *shim) send(c *cniapi.Client, req *cniapi.Request, needReady bool) (*cniapi.Response, error) {
	if needReady {
		if err := c.WaitReady(s.ctx, s.wait); err != nil {
			return nil, err
		}
		return c.Do(s.ctx, req)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.wait)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		resp, err := c.Do(s.ctx, req)
		if !errors.As(err, new(*cniapi.UnreachableError)) {
			return resp, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

func (s *shim) add(args *skel.CmdArgs) error {
	req, c, err := s.request(cniapi.CmdAdd, args)
	if err != nil {
		return err
	}
	resp, err := s.send(c, req, true)
	if err != nil {
		return notReachable(cniapi.CodeTryAgainLater, err)
	}
	res, err := cniversion.NewResult(resp.CNIVersion, resp.Result)
	if err != nil {
		return types.NewError(cniapi.CodeInternal, "kuryr-daemon returned a result that does not parse", err.Error())
	}
	out, err := res.GetAsVersion(req.NetConf.CNIVersion)
	if err != nil {
		return types.NewError(cniapi.CodeInternal,
			fmt.Sprintf("convert the result to CNI version %s", req.NetConf.CNIVersion), err.Error())
	}
	return out.PrintTo(s.stdout)
}

// call sends a verb whose answer is success or an error (CHECK, DEL, GC)
// and returns the error: a bad configuration's (a *types.Error, which
// notReachable passes on as it is), the daemon's, or send's.
func (s *shim) call(cmd string, args *skel.CmdArgs, needReady bool) error {
	req, c, err := s.request(cmd, args)
	if err != nil {
		return err
	}
	_, err = s.send(c, req, needReady)
	return err
}

func (s *shim) check(args *skel.CmdArgs) error {
	return notReachableOrNil(cniapi.CodeTryAgainLater, s.call(cniapi.CmdCheck, args, true))
}

// del forwards DEL. When the daemon cannot be reached within the wait it
// returns success, saying so on stderr: a DEL that fails while the daemon
// is gone would block the pod's removal for as long as the daemon stays
// gone, and what the DEL would release is reclaimed without it (see
// docs/cni.md, "When the daemon is down"). An error the daemon itself
// returns is passed on unchanged, so the runtime retries it.
func (s *shim) del(args *skel.CmdArgs) error {
	err := s.call(cniapi.CmdDel, args, false)
	var ue *cniapi.UnreachableError
	if errors.As(err, &ue) {
		fmt.Fprintf(s.stderr, "kuryr-cni: DEL of container %s ifname %s: %v; reporting success (the attachment is left to the daemon's checkpoint reconcile and CNI GC)\n",
			args.ContainerID, args.IfName, ue)
		return nil
	}
	return notReachableOrNil(cniapi.CodeTryAgainLater, err)
}

func (s *shim) gc(args *skel.CmdArgs) error {
	return notReachableOrNil(cniapi.CodeTryAgainLater, s.call(cniapi.CmdGC, args, false))
}

// status answers code 50 at once when the daemon is down or not ready.
func (s *shim) status(args *skel.CmdArgs) error {
	req, c, err := s.request(cniapi.CmdStatus, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, statusWait)
	defer cancel()
	if err := c.Healthz(ctx); err != nil {
		return notReachable(cniapi.CodePluginNotAvailable, err)
	}
	_, err = c.Do(s.ctx, req)
	return notReachableOrNil(cniapi.CodePluginNotAvailable, err)
}

func notReachableOrNil(code uint, err error) error {
	if err == nil {
		return nil
	}
	return notReachable(code, err)
}
