package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientfeatures "k8s.io/client-go/features"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Permission is one verb of one rule of an RBAC role, on one resource.
type Permission struct {
	Group, Resource, Verb string
	// ResourceNames, when set, limit it to those objects.
	ResourceNames []string
}

func (p Permission) String() string {
	s := p.Verb + " " + p.Resource
	if p.Group != "" {
		s += "." + p.Group
	}
	if len(p.ResourceNames) > 0 {
		s += " " + strings.Join(p.ResourceNames, ",")
	}
	return s
}

// ClusterRolePermissions reads ClusterRole name from file (multi-document
// YAML) and returns its rules split into one Permission per verb, group
// and resource.
func ClusterRolePermissions(file, name string) ([]Permission, error) {
	objs, err := decodeFile(file)
	if err != nil {
		return nil, err
	}
	for _, u := range objs {
		if u.GetKind() != "ClusterRole" || u.GetName() != name {
			continue
		}
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &role); err != nil {
			return nil, fmt.Errorf("%s: ClusterRole %s: %w", file, name, err)
		}
		var out []Permission
		for _, r := range role.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						out = append(out, Permission{Group: g, Resource: res, Verb: v, ResourceNames: r.ResourceNames})
					}
				}
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s holds no ClusterRole %s", file, name)
}

// Without returns perms without the one at index i.
func Without(perms []Permission, i int) []Permission {
	out := append([]Permission(nil), perms[:i]...)
	return append(out, perms[i+1:]...)
}

// UserWithPermissions returns a client configuration for a new user name
// granted exactly perms, by a ClusterRole and ClusterRoleBinding of that
// name made here.
func (e *Env) UserWithPermissions(ctx context.Context, name string, perms []Permission) (*rest.Config, error) {
	if err := e.Grant(ctx, name, perms); err != nil {
		return nil, err
	}
	return e.AddUser(name, "system:authenticated")
}

// Grant makes user name's permissions exactly perms (its ClusterRole and
// ClusterRoleBinding of that name, created or replaced).
func (e *Env) Grant(ctx context.Context, name string, perms []Permission) error {
	return e.grant(ctx, name, name, perms)
}

// grant makes user's permissions exactly perms, by the ClusterRole and
// ClusterRoleBinding named role (created or replaced).
func (e *Env) grant(ctx context.Context, role, user string, perms []Permission) error {
	c, err := client.New(e.Config, client.Options{})
	if err != nil {
		return err
	}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role}}
	for _, p := range perms {
		cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{p.Resource},
			Verbs: []string{p.Verb}, ResourceNames: p.ResourceNames})
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
	for _, o := range []client.Object{cr, binding} {
		err := c.Create(ctx, o)
		if apierrors.IsAlreadyExists(err) {
			var cur rbacv1.ClusterRole
			if _, isRole := o.(*rbacv1.ClusterRole); !isRole {
				continue
			}
			if err = c.Get(ctx, client.ObjectKey{Name: role}, &cur); err == nil {
				cur.Rules = cr.Rules
				err = c.Update(ctx, &cur)
			}
		}
		if err != nil {
			return fmt.Errorf("grant %s: %T: %w", user, o, err)
		}
	}
	return nil
}

// Identity makes, for a fresh name, who a component runs as in
// EveryPermissionUsedBy: the user name RBAC knows it by and a client
// configuration that authenticates as it.
type Identity func(ctx context.Context, name string) (user string, cfg *rest.Config, err error)

// plainUser is a new user of that name (a client certificate).
func (e *Env) plainUser(_ context.Context, name string) (string, *rest.Config, error) {
	cfg, err := e.AddUser(name, "system:authenticated")
	return name, cfg, err
}

var userSeq atomic.Int64

// EveryPermissionUsed shows that a component needs every one of perms:
// run (the component driven through its calls as cfg) is run once as a
// user granted all of them, which must succeed with nothing refused, then
// once per permission as a user granted all but that one, where the API
// server must refuse one of its calls (ctx ends at that first refusal, and
// the permission is given back before the test's later cleanups, such as
// stopping the component, run). refusalExpected tells run which case it
// is in. Informers list first (InformersListFirst). With parallel the runs
// go side by side.
func (e *Env) EveryPermissionUsed(t *testing.T, perms []Permission, parallel bool,
	run func(t *testing.T, ctx context.Context, cfg *rest.Config, refusalExpected bool) error) {
	e.EveryPermissionUsedBy(t, perms, parallel, e.plainUser, run)
}

// EveryPermissionUsedBy is EveryPermissionUsed for a component that runs as
// the identity as makes (a ServiceAccount with a token bound to a node,
// say, where the API server checks more than RBAC) rather than as a plain
// user; the permissions are granted to that identity's user name.
func (e *Env) EveryPermissionUsedBy(t *testing.T, perms []Permission, parallel bool, as Identity,
	run func(t *testing.T, ctx context.Context, cfg *rest.Config, refusalExpected bool) error) {
	InformersListFirst(t)
	one := func(t *testing.T, granted []Permission, removed *Permission) {
		if parallel {
			t.Parallel()
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		name := fmt.Sprintf("kuryr-rbac-test-%d", userSeq.Add(1))
		user, cfg, err := as(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.grant(ctx, name, user, granted); err != nil {
			t.Fatal(err)
		}
		rec := NewRefusals()
		if removed == nil {
			if err := run(t, ctx, rec.Wrap(cfg), false); err != nil {
				t.Fatal(err)
			}
			if r := rec.Refused(); len(r) > 0 {
				t.Fatalf("with every permission the API server refused: %v", r)
			}
			return
		}
		go func() {
			select {
			case <-rec.First():
				cancel()
			case <-ctx.Done():
			}
		}()
		err = run(t, ctx, rec.Wrap(cfg), true)
		// Registered after run's cleanups, so it runs before them.
		t.Cleanup(func() {
			if err := e.grant(context.Background(), name, user, perms); err != nil {
				t.Error(err)
			}
		})
		r := rec.Refused()
		if len(r) == 0 {
			t.Fatalf("with %q removed the API server refused nothing (run: %v): the permission is not needed, or the run misses the call that needs it", removed, err)
		}
		t.Logf("refused: %s", r[0])
	}
	t.Run("all", func(t *testing.T) { one(t, perms, nil) })
	for i, p := range perms {
		t.Run("without "+p.String(), func(t *testing.T) { one(t, Without(perms, i), &p) })
	}
}

// Refusals records the requests the API server refused to clients made
// from configurations it wrapped: a 403, or a 422 whose causes include a
// field forbidden (FieldValueForbidden), which is how authorization checks
// of single fields answer (a ResourceClaim's status.devices needs
// resourceclaims/driver).
type Refusals struct {
	mu      sync.Mutex
	refused []string
	first   chan struct{}
}

// NewRefusals returns an empty record.
func NewRefusals() *Refusals { return &Refusals{first: make(chan struct{})} }

// Wrap returns a copy of cfg whose requests are recorded.
func (r *Refusals) Wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				return resp, err
			}
			refused := resp.StatusCode == http.StatusForbidden
			if resp.StatusCode == http.StatusUnprocessableEntity {
				var ferr error
				if refused, ferr = fieldForbidden(resp); ferr != nil {
					return resp, ferr
				}
			}
			if refused {
				r.mu.Lock()
				if len(r.refused) == 0 {
					close(r.first)
				}
				r.refused = append(r.refused, req.Method+" "+req.URL.RequestURI())
				r.mu.Unlock()
			}
			return resp, nil
		})
	})
	return cfg
}

// fieldForbidden says whether a 422 answer names a forbidden field, and
// puts the body back for the client.
func fieldForbidden(resp *http.Response) (bool, error) {
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return false, err
	}
	// JSON or protobuf, as the client negotiated.
	obj, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(b, nil, nil)
	st, ok := obj.(*metav1.Status)
	if err != nil || !ok || st.Details == nil {
		return false, nil
	}
	for _, c := range st.Details.Causes {
		if c.Type == metav1.CauseType(field.ErrorTypeForbidden) {
			return true, nil
		}
	}
	return false, nil
}

// Refused returns the refused requests so far (method and URL).
func (r *Refusals) Refused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.refused...)
}

// First is closed on the first refusal.
func (r *Refusals) First() <-chan struct{} { return r.first }

// RoundTripFunc is an http.RoundTripper made of a function.
type RoundTripFunc func(*http.Request) (*http.Response, error)

func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// InformersListFirst makes the informers started during t take their first
// list with a LIST rather than a watch stream (client-go's WatchListClient
// off), as they do whenever the stream fails, until t ends. t must not run
// in parallel with tests that need the stream.
func InformersListFirst(t *testing.T) {
	prev := clientfeatures.FeatureGates()
	clientfeatures.ReplaceFeatureGates(gatesWithout{Gates: prev, off: clientfeatures.WatchListClient})
	t.Cleanup(func() { clientfeatures.ReplaceFeatureGates(prev) })
}

type gatesWithout struct {
	clientfeatures.Gates
	off clientfeatures.Feature
}

func (g gatesWithout) Enabled(f clientfeatures.Feature) bool { return f != g.off && g.Gates.Enabled(f) }
