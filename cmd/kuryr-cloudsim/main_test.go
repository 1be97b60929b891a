package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHelpAndBadConfig(t *testing.T) {
	t.Parallel()
	if code := run([]string{"--help"}, io.Discard, io.Discard); code != 0 {
		t.Errorf("--help exited %d", code)
	}
	var stderr strings.Builder
	if code := run([]string{"--config", filepath.Join(t.TempDir(), "absent.yaml")}, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "absent.yaml") {
		t.Errorf("missing config: exit %d, %q", code, stderr.String())
	}
}

// TestServe starts the command's server with a config and asks it for a
// token, as the docs do.
func TestServe(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nnetworks: [{name: pods, cidr: 10.0.0.0/24}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, options{config: cfg}, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var url string
	var seeded struct {
		Networks []struct{ ID string }
	}
	for sc.Scan() {
		line := sc.Text()
		if u, ok := strings.CutPrefix(line, "# kuryr-cloudsim serving on "); ok {
			url = strings.Fields(u)[0]
		}
		if strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), &seeded); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if url == "" || len(seeded.Networks) != 1 {
		t.Fatalf("url %q, seeded %+v", url, seeded)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post(url+"/identity/v3/auth/tokens", "application/json", strings.NewReader(
		`{"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "kuryr-appcred-id", "secret": "kuryr-appcred-secret"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-Subject-Token") == "" {
		t.Errorf("token: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
