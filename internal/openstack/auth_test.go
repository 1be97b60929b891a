package openstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// startSim starts a simulated cloud with opts for the test.
func startSim(t *testing.T, opts cloudsim.Options) *cloudsim.Cloud {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sim := cloudsim.New(opts)
	if err := sim.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// passwordConfig reaches sim through Keystone with its user's password.
func passwordConfig(sim *cloudsim.Cloud) Config {
	cr := sim.Credentials()
	return Config{AuthURL: sim.AuthURL(), Username: cr.UserName, Password: cr.Password,
		UserDomainName: cr.DomainName, ProjectName: cr.ProjectName, ProjectDomainName: cr.DomainName}
}

// works checks that c reaches the simulated Neutron and Nova.
func works(t *testing.T, sim *cloudsim.Cloud, c *Client) {
	t.Helper()
	n, s, err := sim.SeedNetwork("n", "10.1.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetSubnet(context.Background(), s.ID); err != nil || got.NetworkID != n.ID {
		t.Fatalf("GetSubnet = %+v, %v", got, err)
	}
	srv, err := sim.SeedServer(cloudsim.ServerSpec{Name: "vm", SubnetID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetServer(context.Background(), srv.Server.ID); err != nil || got.Host != srv.Server.Host {
		t.Fatalf("GetServer = %+v, %v", got, err)
	}
}

func TestAuthPassword(t *testing.T) {
	t.Parallel()
	sim := startSim(t, cloudsim.Options{})
	c, err := New(context.Background(), passwordConfig(sim))
	if err != nil {
		t.Fatal(err)
	}
	works(t, sim, c)
	if got, want := c.ProjectID(), sim.Credentials().ProjectID; got != want {
		t.Errorf("ProjectID() = %q, want the token's project %q", got, want)
	}
}

func TestAuthApplicationCredential(t *testing.T) {
	t.Parallel()
	sim := startSim(t, cloudsim.Options{})
	cr := sim.Credentials()
	c, err := New(context.Background(), Config{AuthURL: sim.AuthURL(), AppCredentialID: cr.AppCredentialID,
		AppCredentialSecret: cr.AppCredentialSecret})
	if err != nil {
		t.Fatal(err)
	}
	works(t, sim, c)
}

func TestAuthWrongPassword(t *testing.T) {
	t.Parallel()
	sim := startSim(t, cloudsim.Options{})
	cfg := passwordConfig(sim)
	cfg.Password = "wrong"
	_, err := New(context.Background(), cfg)
	var e *Error
	if !errors.Is(err, ErrTerminal) || !errors.As(err, &e) || e.Status != 401 {
		t.Fatalf("New with a wrong password = %v", err)
	}
}

func TestAuthCloudsYAML(t *testing.T) {
	t.Parallel()
	sim := startSim(t, cloudsim.Options{})
	cr := sim.Credentials()
	file := filepath.Join(t.TempDir(), "clouds.yaml")
	yaml := fmt.Sprintf(`clouds:
  sim:
    auth:
      auth_url: %s
      username: %s
      password: %s
      project_name: %s
      user_domain_name: %s
      project_domain_name: %s
    region_name: %s
  sim-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: %s
      application_credential_id: %s
      application_credential_secret: %s
`, sim.AuthURL(), cr.UserName, cr.Password, cr.ProjectName, cr.DomainName, cr.DomainName, cr.Region,
		sim.AuthURL(), cr.AppCredentialID, cr.AppCredentialSecret)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cloud := range []string{"sim", "sim-appcred"} {
		c, err := New(context.Background(), Config{Cloud: cloud, CloudsFile: file})
		if err != nil {
			t.Fatalf("cloud %s: %v", cloud, err)
		}
		works(t, sim, c)
	}
	_, err := New(context.Background(), Config{Cloud: "absent", CloudsFile: file})
	if !errors.Is(err, ErrTerminal) {
		t.Errorf("unknown cloud: %v", err)
	}
}

// TestAuthEnv uses the OS_* variables, so it does not run in parallel.
func TestAuthEnv(t *testing.T) {
	sim := startSim(t, cloudsim.Options{})
	cr := sim.Credentials()
	for k, v := range map[string]string{
		"OS_AUTH_URL": sim.AuthURL(), "OS_USERNAME": cr.UserName, "OS_PASSWORD": cr.Password,
		"OS_PROJECT_NAME": cr.ProjectName, "OS_USER_DOMAIN_NAME": cr.DomainName, "OS_PROJECT_DOMAIN_NAME": cr.DomainName,
		"OS_REGION_NAME": cr.Region, "OS_CLOUD": "",
	} {
		t.Setenv(k, v)
	}
	c, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	works(t, sim, c)

	t.Setenv("OS_USERNAME", "")
	t.Setenv("OS_PASSWORD", "")
	t.Setenv("OS_APPLICATION_CREDENTIAL_ID", cr.AppCredentialID)
	t.Setenv("OS_APPLICATION_CREDENTIAL_SECRET", cr.AppCredentialSecret)
	c, err = New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	works(t, sim, c)

	t.Setenv("OS_AUTH_URL", "")
	if _, err := New(context.Background(), Config{}); !errors.Is(err, ErrTerminal) {
		t.Errorf("New without any cloud configured: %v", err)
	}
}

func TestNoAuthNeedsProject(t *testing.T) {
	t.Parallel()
	if _, err := New(context.Background(), Config{NeutronURL: "http://127.0.0.1:9"}); !errors.Is(err, ErrTerminal) {
		t.Errorf("noauth without a project: %v", err)
	}
}

// TestListPortsOfOneProject: a listing that names the project holds only
// that project's ports; one that does not holds every project's, as an
// admin's listing in Neutron does.
func TestListPortsOfOneProject(t *testing.T) {
	t.Parallel()
	sim := startSim(t, cloudsim.Options{NoAuth: true})
	n, _, err := sim.SeedNetwork("n", "10.1.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, project := range []string{"project-a", "project-b"} {
		c, err := New(context.Background(), Config{NeutronURL: sim.NeutronURL(), ProjectID: project})
		if err != nil {
			t.Fatal(err)
		}
		if c.ProjectID() != project {
			t.Fatalf("ProjectID() = %q, want %q", c.ProjectID(), project)
		}
		p, err := c.CreatePort(context.Background(), PortSpec{NetworkID: n.ID, Tags: []string{"same-tag"}})
		if err != nil {
			t.Fatal(err)
		}
		ids[project] = p.ID
	}
	c, err := New(context.Background(), Config{NeutronURL: sim.NeutronURL(), ProjectID: "project-a"})
	if err != nil {
		t.Fatal(err)
	}
	own, err := c.ListPorts(context.Background(), PortFilter{Tags: []string{"same-tag"}, ProjectID: c.ProjectID()})
	if err != nil || len(own) != 1 || own[0].ID != ids["project-a"] {
		t.Errorf("project-a's listing: %+v, %v; want only port %s", own, err, ids["project-a"])
	}
	all, err := c.ListPorts(context.Background(), PortFilter{Tags: []string{"same-tag"}})
	if err != nil || len(all) != 2 {
		t.Errorf("listing without a project: %d ports, %v; want both projects'", len(all), err)
	}
}
