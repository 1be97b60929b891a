package novastandin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// Binding is what Nova writes on a port it attaches to a server (and
// clears, all empty, on detach).
type Binding struct {
	DeviceID    string
	DeviceOwner string
	HostID      string
}

// Neutron is the part of Neutron the stand-in needs: read ports and set or
// clear their binding.
type Neutron interface {
	GetPort(ctx context.Context, id string) (openstack.Port, error)
	ListPorts(ctx context.Context, f openstack.PortFilter) ([]openstack.Port, error)
	BindPort(ctx context.Context, id string, b Binding) (openstack.Port, error)
}

// NeutronClient talks to a Neutron running with auth_strategy = noauth
// (the standalone neutron-server of internal/neutrontest): reads go
// through internal/openstack; the binding update, which that package does
// not offer (the controller never binds ports), is a gophercloud port
// update with the portsbinding extension.
type NeutronClient struct {
	*openstack.Client
	network *gophercloud.ServiceClient
	timeout time.Duration
}

var _ Neutron = (*NeutronClient)(nil)

// NewNeutronClient returns a client for the noauth Neutron at url (without
// /v2.0, e.g. http://127.0.0.1:9696), acting in project.
func NewNeutronClient(ctx context.Context, url, project string) (*NeutronClient, error) {
	const timeout = 30 * time.Second
	c, err := openstack.New(ctx, openstack.Config{NeutronURL: url, ProjectID: project, RequestTimeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("neutron client for %s: %w", url, err)
	}
	pc := &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: timeout}}
	sc := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: strings.TrimSuffix(url, "/") + "/", Type: "network"}
	sc.ResourceBase = sc.Endpoint + "v2.0/"
	return &NeutronClient{Client: c, network: sc, timeout: timeout}, nil
}

// BindPort sets device_id, device_owner and binding:host_id of port id.
func (n *NeutronClient) BindPort(ctx context.Context, id string, b Binding) (openstack.Port, error) {
	rctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	opts := portsbinding.UpdateOptsExt{
		UpdateOptsBuilder: ports.UpdateOpts{DeviceID: &b.DeviceID, DeviceOwner: &b.DeviceOwner},
		HostID:            &b.HostID,
	}
	var out struct {
		Port *openstack.Port `json:"port"`
	}
	if err := ports.Update(rctx, n.network, id, opts).Result.ExtractInto(&out); err != nil {
		if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return openstack.Port{}, fmt.Errorf("bind port %s to %q: %w: %w", id, b.DeviceID, openstack.ErrNotFound, err)
		}
		return openstack.Port{}, fmt.Errorf("bind port %s to %q: %w", id, b.DeviceID, err)
	}
	if out.Port == nil || out.Port.ID == "" {
		return openstack.Port{}, fmt.Errorf("bind port %s to %q: %w", id, b.DeviceID, errors.New("no port in the answer"))
	}
	return *out.Port, nil
}
