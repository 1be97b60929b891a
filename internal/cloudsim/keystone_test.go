package cloudsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// catalogURLs asks c for a token at c's listener with host as the request's
// Host and returns every endpoint URL of the catalog and the self links of
// the version documents.
func catalogURLs(t *testing.T, c *Cloud, host string) []string {
	t.Helper()
	cr := c.Credentials()
	body := fmt.Sprintf(`{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": %q,
		"password": %q, "domain": {"name": "Default"}}}}, "scope": {"project": {"name": %q, "domain": {"name": "Default"}}}}}`,
		cr.UserName, cr.Password, cr.ProjectName)
	get := func(method, path, body string, out any) {
		req, err := http.NewRequest(method, c.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	var tok struct {
		Token struct {
			Catalog []struct {
				Endpoints []struct{ URL string }
			}
		}
	}
	get("POST", "/identity/v3/auth/tokens", body, &tok)
	var urls []string
	for _, s := range tok.Token.Catalog {
		for _, e := range s.Endpoints {
			urls = append(urls, e.URL)
		}
	}
	type link struct{ Href string }
	var id struct{ Version struct{ Links []link } }
	get("GET", "/identity/v3", "", &id)
	var net, comp struct{ Versions []struct{ Links []link } }
	get("GET", "/network", "", &net)
	get("GET", "/compute", "", &comp)
	for _, ls := range [][]link{id.Version.Links, net.Versions[0].Links, comp.Versions[0].Links} {
		for _, l := range ls {
			urls = append(urls, l.Href)
		}
	}
	if len(urls) != 12 {
		t.Fatalf("%d URLs in the catalog and version documents, want 9 + 3: %v", len(urls), urls)
	}
	return urls
}

// TestAdvertiseRequestHost: with AdvertiseRequestHost the catalog and the
// version documents name the host the request came to; without it, the
// cloud's URL whatever the request's Host.
func TestAdvertiseRequestHost(t *testing.T) {
	t.Parallel()
	const fabric = "10.0.0.1:5000"
	for _, tc := range []struct {
		advertise bool
		want      func(c *Cloud) string
	}{
		{true, func(*Cloud) string { return "http://" + fabric + "/" }},
		{false, func(c *Cloud) string { return c.URL() + "/" }},
	} {
		h := start(t, Options{AdvertiseRequestHost: tc.advertise})
		for _, u := range catalogURLs(t, h.c, fabric) {
			if !strings.HasPrefix(u, tc.want(h.c)) {
				t.Errorf("AdvertiseRequestHost %v, request Host %s: URL %s, want it under %s", tc.advertise, fabric, u, tc.want(h.c))
			}
		}
	}
}
