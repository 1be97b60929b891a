package cloudsim

import (
	"encoding/json"
	"net/http"
	"time"
)

func keystoneRoutes(c *Cloud) []route {
	return []route{
		{"POST /identity/v3/auth/tokens", "keystone.tokens.create", c.createToken},
		{"GET /identity/v3", "keystone.version", c.identityVersion},
		{"GET /identity/v3/{$}", "keystone.version", c.identityVersion},
		// Version discovery documents are public, as in the real services.
		{"GET /network", "neutron.versions", c.neutronVersions},
		{"GET /network/{$}", "neutron.versions", c.neutronVersions},
		{"GET /compute", "nova.versions", c.novaVersions},
		{"GET /compute/{$}", "nova.versions", c.novaVersions},
	}
}

// neutronVersions answers GET on Neutron's root, which gophercloud reads to
// check the catalog's endpoint serves v2.
func (c *Cloud) neutronVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []map[string]any{{
		"id": "v2.0", "status": "CURRENT",
		"links": []map[string]string{{"rel": "self", "href": c.advertised(r) + networkPath + "/v2.0/"}},
	}}})
}

func (c *Cloud) novaVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []map[string]any{{
		"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
		"updated": "2013-07-23T11:33:21Z",
		"links":   []map[string]string{{"rel": "self", "href": c.advertised(r) + computePath + "/"}},
	}}})
}

// authRequest is the part of a Keystone v3 token request the cloud reads.
type authRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User struct {
					ID       string `json:"id"`
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   *struct {
						ID   string `json:"id"`
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
			AppCred *struct {
				ID     string `json:"id"`
				Name   string `json:"name"`
				Secret string `json:"secret"`
			} `json:"application_credential"`
		} `json:"identity"`
		Scope json.RawMessage `json:"scope"`
	} `json:"auth"`
}

func (c *Cloud) identityVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": map[string]any{
		"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
		"links":       []map[string]string{{"rel": "self", "href": c.advertised(r) + identityPath + "/"}},
		"media-types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}},
	}})
}

// createToken answers POST /v3/auth/tokens: 201, the token in
// X-Subject-Token and a catalog pointing at this cloud's own services.
func (c *Cloud) createToken(w http.ResponseWriter, r *http.Request) {
	var req authRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		writeKeystoneError(w, http.StatusBadRequest, "Expecting to find auth in request body")
		return
	}
	id := req.Auth.Identity
	method := ""
	ok := false
	switch {
	case id.Password != nil:
		method = "password"
		u := id.Password.User
		ok = (u.Name == c.creds.UserName || u.ID == c.creds.UserName) && u.Password == c.creds.Password
	case id.AppCred != nil:
		method = "application_credential"
		a := id.AppCred
		ok = (a.ID == c.creds.AppCredentialID || (a.ID == "" && a.Name == c.creds.AppCredentialName)) &&
			a.Secret == c.creds.AppCredentialSecret
	default:
		writeKeystoneError(w, http.StatusBadRequest, "Expecting to find identity in auth")
		return
	}
	if !ok {
		writeKeystoneError(w, http.StatusUnauthorized, "The request you have made requires authentication.")
		return
	}
	tok := newID()
	c.st.mu.Lock()
	c.st.tokens[tok] = c.creds.ProjectID
	c.st.mu.Unlock()

	now := time.Now().UTC()
	base := c.advertised(r)
	endpoint := func(url string) []map[string]string {
		var eps []map[string]string
		for _, iface := range []string{"public", "internal", "admin"} {
			eps = append(eps, map[string]string{"id": newID(), "interface": iface, "region": c.creds.Region,
				"region_id": c.creds.Region, "url": url})
		}
		return eps
	}
	domain := map[string]string{"id": "default", "name": c.creds.DomainName}
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, http.StatusCreated, map[string]any{"token": map[string]any{
		"methods":    []string{method},
		"expires_at": now.Add(24 * time.Hour).Format("2006-01-02T15:04:05.000000Z"),
		"issued_at":  now.Format("2006-01-02T15:04:05.000000Z"),
		"audit_ids":  []string{newID()[:22]},
		"user":       map[string]any{"id": "kuryr-user-id", "name": c.creds.UserName, "domain": domain, "password_expires_at": nil},
		"project":    map[string]any{"id": c.creds.ProjectID, "name": c.creds.ProjectName, "domain": domain},
		"roles":      []map[string]string{{"id": "member-role-id", "name": "member"}, {"id": "reader-role-id", "name": "reader"}},
		"is_domain":  false,
		"catalog": []map[string]any{
			{"id": newID(), "type": "identity", "name": "keystone", "endpoints": endpoint(base + identityPath)},
			{"id": newID(), "type": "network", "name": "neutron", "endpoints": endpoint(base + networkPath)},
			{"id": newID(), "type": "compute", "name": "nova", "endpoints": endpoint(base + computePath)},
		},
	}})
}
