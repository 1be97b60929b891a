// Package neutrontest gives tests a real Neutron API server: Debian's
// neutron-server, run standalone on 127.0.0.1 (noauth, sqlite, ml2 with the
// openvswitch mechanism driver and no agent, the trunk service plugin) by
// hack/neutron/start.sh, or one already running at $KURYR_NEUTRON_URL.
//
// Typical use, in a contract test:
//
//	srv := neutrontest.New(t) // skips loudly if neutron-server is not installed
//	client := ... srv.URL + "/v2.0" ..., project srv.ProjectID
//
// Requests carry no token (noauth): each body that creates a resource must
// name its project_id (see docs/neutron.md for what the server answers).
package neutrontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/freeport"
)

// Environment variables the package reads.
const (
	// URLEnv names an already-running server (e.g. http://127.0.0.1:9696):
	// Start then uses it and starts nothing.
	URLEnv = "KURYR_NEUTRON_URL"
	// ProjectIDEnv sets the project the tests create resources in.
	ProjectIDEnv = "KURYR_NEUTRON_PROJECT_ID"
	// DBEnv is the sqlite file of the server at URLEnv, for SetPortStatus.
	DBEnv = "KURYR_NEUTRON_DB"
	// StateEnv is the state dir hack/neutron/start.sh used for the server at
	// URLEnv; its neutron.sqlite is used when DBEnv is not set.
	StateEnv = "KURYR_NEUTRON_STATE"
	// RequireEnv, when 1, makes New fail instead of skip when neutron-server
	// is not installed (CI sets it).
	RequireEnv = "KURYR_TEST_NEUTRON"
)

// DefaultProjectID is the project used when ProjectIDEnv is not set.
const DefaultProjectID = "kuryr-test"

// ErrNotInstalled says neutron-server (or the sqlite3 CLI) is missing.
var ErrNotInstalled = errors.New("neutron-server is not installed: run hack/neutron/install.sh (as root)")

// Options tune Start. The zero value is ready to use.
type Options struct {
	// RepoRoot is the checkout holding hack/neutron; default: the nearest
	// directory at or above the working directory that has
	// hack/neutron/start.sh.
	RepoRoot string
	// Port to listen on (127.0.0.1 only); 0 picks a free one.
	Port int
	// StateDir holds config, database and log; default: a new directory
	// under os.TempDir(). Stop removes it.
	StateDir string
	// ProjectID overrides ProjectIDEnv / DefaultProjectID.
	ProjectID string
}

// Server is a running Neutron API.
type Server struct {
	// URL is the endpoint without the version, e.g. http://127.0.0.1:9696;
	// the API is under URL + "/v2.0".
	URL string
	// ProjectID is the project tests create resources in.
	ProjectID string
	// DBPath is the server's sqlite file, "" when unknown (a server at
	// URLEnv without DBEnv/StateEnv): SetPortStatus needs it.
	DBPath string

	stateDir string // "" when the server is not ours to stop
	repo     string
}

// Start runs hack/neutron/start.sh, or returns the server at $KURYR_NEUTRON_URL
// when that is set (after checking that it answers). It fails with an error
// wrapping ErrNotInstalled when neutron-server is not installed.
func Start(ctx context.Context, opts Options) (*Server, error) {
	project := opts.ProjectID
	if project == "" {
		project = os.Getenv(ProjectIDEnv)
	}
	if project == "" {
		project = DefaultProjectID
	}
	if u := os.Getenv(URLEnv); u != "" {
		return attach(ctx, strings.TrimRight(u, "/"), project)
	}
	for _, bin := range []string{"neutron-server", "neutron-db-manage", "sqlite3"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%w (%s not found)", ErrNotInstalled, bin)
		}
	}
	repo := opts.RepoRoot
	if repo == "" {
		var err error
		if repo, err = findRepoRoot(); err != nil {
			return nil, err
		}
	}
	port := opts.Port
	if port == 0 {
		ports, err := freeport.Pick(1)
		if err != nil {
			return nil, err
		}
		port = ports[0]
	}
	state := opts.StateDir
	if state == "" {
		dir, err := os.MkdirTemp("", "kuryr-neutron-")
		if err != nil {
			return nil, fmt.Errorf("create neutron state dir: %w", err)
		}
		state = dir
	}
	s := &Server{ProjectID: project, DBPath: filepath.Join(state, "neutron.sqlite"), stateDir: state, repo: repo}

	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, "hack/neutron/start.sh"),
		"-p", strconv.Itoa(port), "-d", state)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		_ = s.stop() // a half-started server and its state dir must not outlive the failure
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 3 {
			return nil, fmt.Errorf("%w: %s", ErrNotInstalled, strings.TrimSpace(stderr.String()))
		}
		return nil, fmt.Errorf("start neutron-server on port %d: %w\n%s", port, err, stderr.String())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "http://") {
		_ = s.stop()
		return nil, fmt.Errorf("start neutron-server on port %d: no URL printed\n%s", port, stderr.String())
	}
	s.URL = lines[len(lines)-1]
	return s, nil
}

// attach returns the server at url, which must answer GET /v2.0/networks.
func attach(ctx context.Context, url, project string) (*Server, error) {
	s := &Server{URL: url, ProjectID: project, DBPath: os.Getenv(DBEnv)}
	if s.DBPath == "" {
		if st := os.Getenv(StateEnv); st != "" {
			s.DBPath = filepath.Join(st, "neutron.sqlite")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v2.0/networks?limit=1", nil)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", URLEnv, url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("neutron at %s=%s does not answer: %w", URLEnv, url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("neutron at %s=%s: GET /v2.0/networks answered %s", URLEnv, url, resp.Status)
	}
	return s, nil
}

// Stop stops the server and removes its state dir, if Start started it;
// a server at $KURYR_NEUTRON_URL is left running.
func (s *Server) Stop() error { return s.stop() }

func (s *Server) stop() error {
	if s.stateDir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", filepath.Join(s.repo, "hack/neutron/stop.sh"),
		"-d", s.stateDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("stop neutron-server in %s: %w\n%s", s.stateDir, err, out)
	}
	s.stateDir = ""
	return nil
}

// LogTail returns the last n lines of the server's log ("" when the server
// is not ours).
func (s *Server) LogTail(n int) string {
	if s.stateDir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(s.stateDir, "neutron-server.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// New starts a server for t (see Start) and stops it when t ends, showing
// the end of its log if t failed. Without neutron-server installed it skips
// t with a message naming hack/neutron/install.sh, or fails t when
// KURYR_TEST_NEUTRON=1.
func New(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if errors.Is(err, ErrNotInstalled) {
		msg := "SKIPPED: this test needs a real Neutron: " + err.Error()
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg + " (" + RequireEnv + "=1 forbids skipping)")
		}
		t.Skip(msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if tail := s.LogTail(40); tail != "" {
				t.Logf("end of neutron-server log:\n%s", tail)
			}
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repo root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "hack/neutron/start.sh")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find repo root: no hack/neutron/start.sh at or above %s", dir)
		}
	}
}
