// Package cloudsim is a simulated OpenStack cloud: an HTTP server that speaks
// the subset of Keystone v3, Neutron v2.0 and Nova v2.1 that kuryr-dpdk uses,
// with the real JSON shapes, status codes, error bodies and behaviour (IP
// allocation, MAC generation, tags, trunks, revision numbers and If-Match,
// port binding on interface attach), so that gophercloud talks to it
// unmodified. Latency and fault injection knobs and per-operation request
// counters serve tests and benchmarks.
//
// The services share one listener, laid out as devstack does:
//
//	/identity/v3     Keystone
//	/network/v2.0    Neutron
//	/compute/v2.1    Nova
//
// No production package may import cloudsim; tests, cmd/kuryr-cloudsim and the
// all-in-one environment do.
package cloudsim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Credentials a simulated Keystone accepts.
type Credentials struct {
	// Password authentication.
	UserName   string `json:"userName"`
	Password   string `json:"password"`
	DomainName string `json:"domainName"`
	// Application credential authentication.
	AppCredentialID     string `json:"appCredentialID"`
	AppCredentialName   string `json:"appCredentialName"`
	AppCredentialSecret string `json:"appCredentialSecret"`
	// The project tokens are scoped to.
	ProjectID   string `json:"projectID"`
	ProjectName string `json:"projectName"`
	Region      string `json:"region"`
}

// DefaultCredentials are the credentials of a cloud made with zero Options.
var DefaultCredentials = Credentials{
	UserName: "kuryr", Password: "kuryr-secret", DomainName: "Default",
	AppCredentialID: "kuryr-appcred-id", AppCredentialName: "kuryr-appcred", AppCredentialSecret: "kuryr-appcred-secret",
	ProjectID: "kuryr-project-id", ProjectName: "kuryr", Region: "RegionOne",
}

// Options configure a simulated cloud. The zero value is a working cloud
// with DefaultCredentials, no latency and no faults.
type Options struct {
	Credentials *Credentials
	// NoAuth serves Neutron and Nova without tokens, as Neutron's noauth
	// strategy does; create requests must then carry project_id.
	NoAuth bool
	// Latency and Faults per operation name (see Operations), "prefix.*"
	// or "*".
	Latency map[string]Latency
	Faults  map[string]Fault
	// Seed makes latency and faults reproducible when non-zero.
	Seed uint64
	// BindDelay is how long a port stays DOWN after it is bound (Nova
	// attach, binding:host_id, subport of a bound trunk) before it turns
	// ACTIVE, as a real L2 agent takes; 0 is at once.
	BindDelay time.Duration `json:"bindDelay,omitempty"`
	// NoAgent serves a bare Neutron with no L2 agent, like the standalone
	// neutron-server of the contract tests: binding a port leaves it DOWN,
	// and trunk subports keep their device fields (an agent is what marks
	// them trunk:subport and binds them). Without it the simulation stands
	// in for a deployed cloud, agent included.
	NoAgent bool `json:"noAgent,omitempty"`
	// NoTagsOnCreate rejects "tags" in port create bodies (400), as a
	// Neutron without the tag-ports-during-bulk-creation extension does.
	NoTagsOnCreate bool `json:"noTagsOnCreate,omitempty"`
	// AdvertiseRequestHost makes the catalog and the version documents
	// name the host each request came to instead of the cloud's URL: a
	// cloud reached at several addresses (the all-in-one's loopback and
	// its node VMs' fabric) sends each client to the address it used.
	AdvertiseRequestHost bool `json:"advertiseRequestHost,omitempty"`
	// MaxAllowedAddressPairs is Neutron's max_allowed_address_pair: how
	// many allowed address pairs a port may carry (400
	// AllowedAddressPairExhausted past it); DefaultMaxAllowedAddressPairs
	// (Neutron's default, 10) when zero. nested-macvlan puts one pair per
	// pod on its node VM's port, so a cloud that runs more than ten such
	// pods a node has it raised (docs/cloudsim.md).
	MaxAllowedAddressPairs int `json:"maxAllowedAddressPairs,omitempty"`
}

// ServerHook lets a simulated VM learn that Nova attached or detached one of
// its interfaces (a real VM sees a virtio device hot-plugged). An error from
// Attached fails the attach (Nova answers 500 and the port is unbound).
type ServerHook interface {
	Attached(ctx context.Context, serverID string, port Port) error
	Detached(ctx context.Context, serverID string, port Port) error
}

// Cloud is a simulated OpenStack cloud.
type Cloud struct {
	creds          Credentials
	noAuth         bool
	noTagsOnCreate bool
	bindDelay      time.Duration
	noAgent        bool
	maxPairs       int
	st             *store

	knobs   sync.Mutex
	latency map[string]Latency
	faults  map[string]Fault
	rng     *rand.Rand

	countMu sync.Mutex
	counts  map[string]int64
	faulted map[string]int64

	hookMu sync.Mutex
	hooks  map[string]ServerHook

	mux     *http.ServeMux
	baseURL string
	// advertiseRequestHost: Options.AdvertiseRequestHost.
	advertiseRequestHost bool
	srv                  *http.Server
	closing              chan struct{}
	once                 sync.Once
}

// New returns a simulated cloud. Serve it with Start, or mount Handler on a
// server of your own and call SetBaseURL.
func New(opts Options) *Cloud {
	creds := DefaultCredentials
	if opts.Credentials != nil {
		creds = *opts.Credentials
	}
	c := &Cloud{
		creds: creds, noAuth: opts.NoAuth, noTagsOnCreate: opts.NoTagsOnCreate, bindDelay: opts.BindDelay, noAgent: opts.NoAgent, st: newStore(),
		latency: map[string]Latency{}, faults: map[string]Fault{}, rng: newRNG(opts.Seed),
		counts: map[string]int64{}, faulted: map[string]int64{}, hooks: map[string]ServerHook{},
		mux: http.NewServeMux(), closing: make(chan struct{}), advertiseRequestHost: opts.AdvertiseRequestHost,
	}
	if c.maxPairs = opts.MaxAllowedAddressPairs; c.maxPairs <= 0 {
		c.maxPairs = DefaultMaxAllowedAddressPairs
	}
	for k, v := range opts.Latency {
		c.latency[k] = v
	}
	for k, v := range opts.Faults {
		c.faults[k] = v
	}
	c.routeKeystone()
	c.routeNeutron()
	c.routeNova()
	c.routeControl()
	return c
}

// Start serves the cloud on addr ("127.0.0.1:0" for a free port) until ctx
// ends or Close is called, and returns once it is listening.
func (c *Cloud) Start(ctx context.Context, addr string) error {
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if c.baseURL == "" {
		c.baseURL = "http://" + l.Addr().String()
	}
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(l) }()
	go func() {
		select {
		case <-ctx.Done():
			c.Close()
		case <-c.closing:
		}
	}()
	return nil
}

// Close stops the server started by Start. Hanging requests end at once.
func (c *Cloud) Close() {
	c.once.Do(func() {
		close(c.closing)
		if c.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.srv.Shutdown(ctx); err != nil {
				_ = c.srv.Close()
			}
		}
	})
}

// SetBaseURL sets the URL the Keystone catalog advertises (the address
// clients reach the cloud at). Start sets it from the listener if unset.
func (c *Cloud) SetBaseURL(u string) { c.baseURL = strings.TrimSuffix(u, "/") }

// URL is the cloud's base URL, e.g. http://127.0.0.1:34567.
func (c *Cloud) URL() string { return c.baseURL }

// AuthURL is Keystone's v3 endpoint, for OS_AUTH_URL.
func (c *Cloud) AuthURL() string { return c.baseURL + identityPath }

// NeutronURL is Neutron's endpoint as the catalog lists it (without /v2.0).
func (c *Cloud) NeutronURL() string { return c.baseURL + networkPath }

// NovaURL is Nova's endpoint as the catalog lists it (with /v2.1).
func (c *Cloud) NovaURL() string { return c.baseURL + computePath }

// The services' paths under the cloud's URL, as the catalog lists them.
const (
	identityPath = "/identity/v3"
	networkPath  = "/network"
	computePath  = "/compute/v2.1"
)

// advertised is the base URL the answer to r names: the cloud's URL, or
// with AdvertiseRequestHost the host r came to.
func (c *Cloud) advertised(r *http.Request) string {
	if c.advertiseRequestHost && r.Host != "" {
		return "http://" + r.Host
	}
	return c.baseURL
}

// Credentials returns the credentials the cloud accepts.
func (c *Cloud) Credentials() Credentials { return c.creds }

// SetServerHook registers h for serverID (nil removes it).
func (c *Cloud) SetServerHook(serverID string, h ServerHook) {
	c.hookMu.Lock()
	defer c.hookMu.Unlock()
	if h == nil {
		delete(c.hooks, serverID)
		return
	}
	c.hooks[serverID] = h
}

func (c *Cloud) hook(serverID string) ServerHook {
	c.hookMu.Lock()
	defer c.hookMu.Unlock()
	return c.hooks[serverID]
}

// Count returns how many requests of operation op the cloud received
// (including failed and fault-injected ones).
func (c *Cloud) Count(op string) int64 {
	c.countMu.Lock()
	defer c.countMu.Unlock()
	return c.counts[op]
}

// Counts returns the request count of every operation seen so far.
func (c *Cloud) Counts() map[string]int64 {
	c.countMu.Lock()
	defer c.countMu.Unlock()
	m := make(map[string]int64, len(c.counts))
	for k, v := range c.counts {
		m[k] = v
	}
	return m
}

// FaultCount returns how many requests of op got an injected fault.
func (c *Cloud) FaultCount(op string) int64 {
	c.countMu.Lock()
	defer c.countMu.Unlock()
	return c.faulted[op]
}

// ResetCounts sets every counter to zero.
func (c *Cloud) ResetCounts() {
	c.countMu.Lock()
	defer c.countMu.Unlock()
	c.counts = map[string]int64{}
	c.faulted = map[string]int64{}
}

func (c *Cloud) countFault(op string) {
	c.countMu.Lock()
	defer c.countMu.Unlock()
	c.faulted[op]++
}

// Operations lists the operation names the cloud counts, sorted.
func (c *Cloud) Operations() []string {
	seen := map[string]bool{}
	var ops []string
	for _, r := range routes(c) {
		if !seen[r.op] {
			seen[r.op] = true
			ops = append(ops, r.op)
		}
	}
	sort.Strings(ops)
	return ops
}

// ServeHTTP implements http.Handler.
func (c *Cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

type route struct {
	pattern string // ServeMux pattern, "METHOD /path"
	op      string // operation name, e.g. neutron.ports.create
	h       http.HandlerFunc
}

func routes(c *Cloud) []route {
	var rs []route
	rs = append(rs, keystoneRoutes(c)...)
	rs = append(rs, neutronRoutes(c)...)
	rs = append(rs, novaRoutes(c)...)
	return rs
}

func (c *Cloud) routeKeystone() { c.mount(keystoneRoutes(c), false) }
func (c *Cloud) routeNeutron()  { c.mount(neutronRoutes(c), true) }
func (c *Cloud) routeNova()     { c.mount(novaRoutes(c), true) }

type ctxKey int

const projectKey ctxKey = 0

// projectOf returns the project of the request's token ("" under NoAuth).
func projectOf(r *http.Request) string {
	p, _ := r.Context().Value(projectKey).(string)
	return p
}

// mount registers rs, each wrapped in counting, latency, fault injection
// and (when authed) token checks.
func (c *Cloud) mount(rs []route, authed bool) {
	for _, rt := range rs {
		op, h := rt.op, rt.h
		c.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			c.countMu.Lock()
			c.counts[op]++
			c.countMu.Unlock()
			delay, fault := c.decide(op)
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
			}
			if authed {
				project, err := c.authenticate(r)
				if err != nil {
					writeServiceError(w, op, http.StatusUnauthorized, err.Error())
					return
				}
				r = r.WithContext(context.WithValue(r.Context(), projectKey, project))
			}
			if fault != nil {
				c.serveWithFault(w, r, op, fault, h)
				return
			}
			h(w, r)
		})
	}
}

var errNoToken = errors.New("the request you have made requires authentication")

func (c *Cloud) authenticate(r *http.Request) (string, error) {
	tok := r.Header.Get("X-Auth-Token")
	if c.noAuth {
		return "", nil
	}
	if tok == "" {
		return "", errNoToken
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	p, ok := c.st.tokens[tok]
	if !ok {
		return "", errNoToken
	}
	return p, nil
}
