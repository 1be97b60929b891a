package openstack

import (
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// For the contract tests of package openstack_test (contract_nova_test.go),
// which import internal/testing/novastandin, itself an importer of this
// package: a test of package openstack cannot import it.

// ContractNova is a Nova for the contract suite: seed makes a server with
// a parent port on a subnet and returns its ID.
type ContractNova func(t *testing.T, subnetID string) string

// RunContract runs the contract suite against c (acting in project, "" with
// Keystone) and nova.
func RunContract(t *testing.T, c *Client, project string, nova ContractNova) {
	runContract(t, contractTarget{client: c, project: project, seedServer: nova})
}

// AgentHooks: see agentHooks.
type AgentHooks = agentHooks

// NewAgentHooks returns hooks calling plugged, wireTrunk and unwired.
func NewAgentHooks(plugged, wireTrunk, unwired func(t *testing.T, id string)) AgentHooks {
	return agentHooks{plugged: plugged, wireTrunk: wireTrunk, unwired: unwired}
}

// RunAgentContract runs runAgentContract against c and nova and checks the
// views against wantAgentViews; it returns the views.
func RunAgentContract(t *testing.T, c *Client, project string, nova ContractNova, hooks AgentHooks) map[string]portView {
	got := runAgentContract(t, contractTarget{client: c, project: project, seedServer: nova}, hooks)
	checkAgentViews(t, got)
	return got
}

// SimAgentViews are the simulation's views in agent mode.
func SimAgentViews(t *testing.T) map[string]portView {
	tg, _ := simTargetWith(t, cloudsim.Options{})
	return runAgentContract(t, tg, agentHooks{})
}
