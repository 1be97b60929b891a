package neutrontest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartAttachesToURLEnv(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		ok     bool
	}{
		{"answers", http.StatusOK, true},
		{"broken", http.StatusInternalServerError, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked string
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked = r.URL.Path
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"networks": []}`))
			}))
			defer ts.Close()
			t.Setenv(URLEnv, ts.URL+"/")
			t.Setenv(ProjectIDEnv, "")
			t.Setenv(DBEnv, "")
			t.Setenv(StateEnv, "/some/state")

			s, err := Start(context.Background(), Options{})
			if !tc.ok {
				if err == nil {
					t.Fatalf("Start with a server answering %d succeeded", tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if asked != "/v2.0/networks" {
				t.Errorf("Start probed %q, want /v2.0/networks", asked)
			}
			if s.URL != ts.URL || s.ProjectID != DefaultProjectID || s.DBPath != "/some/state/neutron.sqlite" {
				t.Errorf("Start = %+v, want URL %s, project %s, DB under /some/state", s, ts.URL, DefaultProjectID)
			}
			if err := s.Stop(); err != nil {
				t.Errorf("Stop of an attached server: %v", err)
			}
		})
	}
}

func TestStartNotInstalled(t *testing.T) {
	t.Setenv(URLEnv, "")
	t.Setenv("PATH", t.TempDir())
	_, err := Start(context.Background(), Options{})
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start without neutron-server on PATH: %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(err.Error(), "hack/neutron/install.sh") {
		t.Errorf("error %q does not name hack/neutron/install.sh", err)
	}
}

func TestSetStatusRejects(t *testing.T) {
	t.Parallel()
	s := &Server{DBPath: filepath.Join(t.TempDir(), "none.sqlite")}
	for _, tc := range []struct{ id, status string }{
		{"x'; DROP TABLE ports; --", "ACTIVE"},
		{"0625aaac-4465-4165-b89e-a8cd57c34d87", "active"},
		{"", "ACTIVE"},
	} {
		if err := s.SetPortStatus(tc.id, tc.status); err == nil {
			t.Errorf("SetPortStatus(%q, %q) succeeded", tc.id, tc.status)
		}
	}
	if err := (&Server{}).SetPortStatus("0625aaac", "ACTIVE"); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("SetPortStatus without a database: %v, want ErrNoDatabase", err)
	}
}

// TestSetPortStatusSQLite runs SetPortStatus on a database with the two
// tables it touches, as Neutron's schema has them.
func TestSetPortStatusSQLite(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		msg := "SKIPPED: the sqlite3 CLI is missing: run hack/neutron/install.sh"
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	db := filepath.Join(t.TempDir(), "neutron.sqlite")
	out, err := exec.Command("sqlite3", db, `
CREATE TABLE standardattributes (id INTEGER NOT NULL PRIMARY KEY, resource_type VARCHAR(255) NOT NULL,
  description VARCHAR(255), revision_number INTEGER DEFAULT '0' NOT NULL, created_at DATETIME, updated_at DATETIME);
CREATE TABLE ports (id VARCHAR(36) NOT NULL PRIMARY KEY, status VARCHAR(16) NOT NULL, standard_attr_id INTEGER NOT NULL);
INSERT INTO standardattributes VALUES (7, 'ports', '', 3, NULL, NULL), (8, 'ports', '', 1, NULL, NULL);
INSERT INTO ports VALUES ('aaaa-1', 'DOWN', 7), ('bbbb-2', 'DOWN', 8);`).CombinedOutput()
	if err != nil {
		t.Fatalf("make database: %v: %s", err, out)
	}
	s := &Server{DBPath: db}
	if err := s.SetPortStatus("aaaa-1", "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPortStatus("cccc-3", "ACTIVE"); err == nil || !strings.Contains(err.Error(), "cccc-3") {
		t.Errorf("SetPortStatus of a missing port: %v, want an error naming it", err)
	}
	got, err := exec.Command("sqlite3", db, `SELECT p.id, p.status, s.revision_number, s.updated_at IS NOT NULL
  FROM ports p JOIN standardattributes s ON s.id = p.standard_attr_id ORDER BY p.id;`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "aaaa-1|ACTIVE|4|1\nbbbb-2|DOWN|1|0\n"; string(got) != want {
		t.Errorf("after SetPortStatus:\n%s\nwant:\n%s", got, want)
	}
}
