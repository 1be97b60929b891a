// Package openstack is kuryr-dpdk's OpenStack layer: the Neutron and Nova
// calls the controller makes, on gophercloud v2, behind small interfaces
// sized to each caller, with every error classified (ErrNotFound,
// ErrConflict, ErrTransient, ErrTerminal), a timeout and a context on every
// request, and a bounded retry helper.
package openstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gcos "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
)

// DefaultRequestTimeout bounds each request when Config.RequestTimeout is 0.
const DefaultRequestTimeout = 30 * time.Second

// Config says how to reach the cloud. Exactly one way to authenticate is
// used, the first that applies:
//
//  1. NeutronURL set: no authentication ("noauth", as a standalone
//     neutron-server runs); ProjectID is sent in create bodies;
//  2. AuthURL set: Keystone v3 with the password or application
//     credential fields below;
//  3. Cloud set (or OS_CLOUD): that entry of clouds.yaml (CloudsFile, or
//     OS_CLIENT_CONFIG_FILE, or the usual locations), with its TLS settings:
//     cacert (or OS_CACERT), verify, cert and key (or OS_CERT, OS_KEY);
//  4. otherwise the OS_* environment variables, read by ConfigFromEnv.
type Config struct {
	// Noauth mode.
	NeutronURL string // e.g. http://127.0.0.1:9696 (without /v2.0)
	NovaURL    string // e.g. http://127.0.0.1:8774/v2.1
	ProjectID  string

	// Keystone v3.
	AuthURL             string
	Username            string
	UserDomainName      string
	UserDomainID        string
	Password            string
	ProjectName         string
	ProjectDomainName   string
	ProjectDomainID     string
	AppCredentialID     string
	AppCredentialName   string
	AppCredentialSecret string

	// clouds.yaml.
	Cloud      string
	CloudsFile string

	Region string
	// RequestTimeout bounds every request; DefaultRequestTimeout when 0.
	RequestTimeout time.Duration
	// HTTPClient is used when set.
	HTTPClient *http.Client
}

// Client talks to Neutron and Nova. It implements every interface of this
// package; give each caller only the interface it needs.
type Client struct {
	network *gophercloud.ServiceClient
	compute *gophercloud.ServiceClient
	// project is sent in create bodies in noauth mode.
	project string
	// tokenProject is the project Keystone scoped the token to.
	tokenProject string
	timeout      time.Duration
	// pageSize is how many ports a page of ListPorts holds (0:
	// listPageSize).
	pageSize int
}

// New authenticates (unless noauth) and returns a Client.
func New(ctx context.Context, cfg Config) (*Client, error) {
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	hc := http.Client{}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	if hc.Timeout == 0 {
		// Also bounds the requests gophercloud makes without a deadline
		// (endpoint version discovery).
		hc.Timeout = timeout
	}
	if cfg.NeutronURL != "" {
		return newNoAuth(cfg, hc, timeout)
	}
	ao, eo, tc, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	if hc, err = withTLS(hc, tc); err != nil {
		return nil, err
	}
	ao.AllowReauth = true
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pc, err := config.NewProviderClient(actx, ao, config.WithHTTPClient(hc))
	if err != nil {
		return nil, classify("authenticate to "+ao.IdentityEndpoint, err)
	}
	if cfg.Region != "" {
		eo.Region = cfg.Region
	}
	network, err := gcos.NewNetworkV2(pc, eo)
	if err != nil {
		return nil, classify("find the network endpoint", err)
	}
	compute, err := gcos.NewComputeV2(pc, eo)
	if err != nil {
		return nil, classify("find the compute endpoint", err)
	}
	return &Client{network: network, compute: compute, tokenProject: tokenProject(pc), timeout: timeout}, nil
}

// tokenProject returns the project pc's Keystone v3 token is scoped to, or
// "" (unscoped, or another identity version).
func tokenProject(pc *gophercloud.ProviderClient) string {
	r, ok := pc.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return ""
	}
	p, err := r.ExtractProject()
	if err != nil || p == nil {
		return ""
	}
	return p.ID
}

// ProjectID implements Projecter.
func (c *Client) ProjectID() string {
	if c.project != "" {
		return c.project
	}
	return c.tokenProject
}

// ConfigFromEnv reads the OS_* variables of an openrc file: OS_AUTH_URL,
// OS_USERNAME, OS_PASSWORD, OS_USER_DOMAIN_NAME (_ID), OS_PROJECT_NAME
// (_ID), OS_PROJECT_DOMAIN_NAME (_ID), OS_DOMAIN_NAME (_ID) for both,
// OS_APPLICATION_CREDENTIAL_ID (_NAME, _SECRET), OS_REGION_NAME, OS_CLOUD.
func ConfigFromEnv() Config {
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := os.Getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	return Config{
		AuthURL: first("OS_AUTH_URL"), Username: first("OS_USERNAME"), Password: first("OS_PASSWORD"),
		UserDomainName:  first("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"),
		UserDomainID:    first("OS_USER_DOMAIN_ID", "OS_DOMAIN_ID"),
		ProjectName:     first("OS_PROJECT_NAME", "OS_TENANT_NAME"),
		ProjectID:       first("OS_PROJECT_ID", "OS_TENANT_ID"),
		ProjectDomainID: first("OS_PROJECT_DOMAIN_ID", "OS_DOMAIN_ID"), ProjectDomainName: first("OS_PROJECT_DOMAIN_NAME", "OS_DOMAIN_NAME"),
		AppCredentialID: first("OS_APPLICATION_CREDENTIAL_ID"), AppCredentialName: first("OS_APPLICATION_CREDENTIAL_NAME"),
		AppCredentialSecret: first("OS_APPLICATION_CREDENTIAL_SECRET"),
		Region:              first("OS_REGION_NAME"), Cloud: first("OS_CLOUD"),
	}
}

func explicitAuth(cfg Config) (gophercloud.AuthOptions, error) {
	ao := gophercloud.AuthOptions{
		IdentityEndpoint: cfg.AuthURL, Username: cfg.Username, Password: cfg.Password,
		DomainName: cfg.UserDomainName, DomainID: cfg.UserDomainID, ApplicationCredentialID: cfg.AppCredentialID,
		ApplicationCredentialName: cfg.AppCredentialName, ApplicationCredentialSecret: cfg.AppCredentialSecret,
	}
	if cfg.AppCredentialSecret != "" {
		// An application credential is scoped already.
		return ao, nil
	}
	if cfg.Username == "" || cfg.Password == "" {
		return ao, fmt.Errorf("keystone at %s: need a username and password or an application credential: %w", cfg.AuthURL, ErrTerminal)
	}
	switch {
	case cfg.ProjectID != "":
		ao.Scope = &gophercloud.AuthScope{ProjectID: cfg.ProjectID}
	case cfg.ProjectName != "":
		ao.Scope = &gophercloud.AuthScope{ProjectName: cfg.ProjectName, DomainName: cfg.ProjectDomainName, DomainID: cfg.ProjectDomainID}
	}
	return ao, nil
}

// authOptions returns how to authenticate, where to find the endpoints and,
// from clouds.yaml only, the TLS settings (nil otherwise).
func authOptions(cfg Config) (gophercloud.AuthOptions, gophercloud.EndpointOpts, *tls.Config, error) {
	eo := gophercloud.EndpointOpts{Region: cfg.Region}
	if cfg.AuthURL != "" {
		ao, err := explicitAuth(cfg)
		return ao, eo, nil, err
	}
	cloud := cfg.Cloud
	if cloud == "" {
		cloud = os.Getenv("OS_CLOUD")
	}
	if cloud != "" {
		opts := []clouds.ParseOption{clouds.WithCloudName(cloud)}
		if cfg.CloudsFile != "" {
			opts = append(opts, clouds.WithLocations(cfg.CloudsFile))
		}
		ao, ceo, tc, err := clouds.Parse(opts...)
		if err != nil {
			return ao, ceo, nil, fmt.Errorf("read cloud %q from clouds.yaml: %w", cloud, errors.Join(ErrTerminal, err))
		}
		if cfg.Region != "" {
			ceo.Region = cfg.Region
		}
		return ao, ceo, tc, nil
	}
	env := ConfigFromEnv()
	if env.AuthURL == "" {
		return gophercloud.AuthOptions{}, eo, nil, fmt.Errorf("no cloud configured (no noauth Neutron URL, auth URL, clouds.yaml entry or OS_AUTH_URL): %w", ErrTerminal)
	}
	if eo.Region == "" {
		eo.Region = env.Region
	}
	ao, err := explicitAuth(env)
	return ao, eo, nil, err
}

// withTLS returns hc with tc's trusted CAs, verification choice and client
// certificate on a copy of its transport. A tc that sets none of them (a
// clouds.yaml entry without TLS settings) leaves hc as it is.
func withTLS(hc http.Client, tc *tls.Config) (http.Client, error) {
	if tc == nil || (tc.RootCAs == nil && !tc.InsecureSkipVerify && len(tc.Certificates) == 0) {
		return hc, nil
	}
	var tr *http.Transport
	switch t := hc.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return hc, fmt.Errorf("clouds.yaml TLS settings need an *http.Transport, the configured HTTP client has %T: %w", t, ErrTerminal)
	}
	tr.TLSClientConfig = tc
	hc.Transport = tr
	return hc, nil
}

// newNoAuth builds service clients by hand on a provider without a token,
// for a Neutron (and Nova) running with auth_strategy = noauth.
func newNoAuth(cfg Config, hc http.Client, timeout time.Duration) (*Client, error) {
	if cfg.ProjectID == "" {
		return nil, fmt.Errorf("noauth mode for %s needs a project ID: %w", cfg.NeutronURL, ErrTerminal)
	}
	pc := &gophercloud.ProviderClient{HTTPClient: hc}
	slash := func(u string) string { return strings.TrimSuffix(u, "/") + "/" }
	network := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: slash(cfg.NeutronURL), Type: "network"}
	network.ResourceBase = network.Endpoint + "v2.0/"
	c := &Client{network: network, project: cfg.ProjectID, timeout: timeout}
	if cfg.NovaURL != "" {
		// Nova's noauth2 middleware takes "user:project" as the token.
		c.compute = &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: slash(cfg.NovaURL), Type: "compute",
			MoreHeaders: map[string]string{"X-Auth-Token": "kuryr:" + cfg.ProjectID}}
	}
	return c, nil
}

// requestCtx bounds one request.
func (c *Client) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// needCompute fails calls to Nova when no Nova endpoint is configured.
func (c *Client) needCompute(op string) error {
	if c.compute == nil {
		return &Error{Op: op, class: ErrTerminal, Message: "no Nova endpoint configured"}
	}
	return nil
}
