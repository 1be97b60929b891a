package manager

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long a review's answer is reused for the same token, method and
// path, and how long one review may take. An answer that let the client in
// is kept a minute, one that refused it ten seconds (a scraper just given
// the role waits no longer than that); an error is never kept.
const (
	allowTTL      = time.Minute
	denyTTL       = 10 * time.Second
	reviewTimeout = 10 * time.Second
	// maxDecisions bounds the cache: anyone who reaches the port can send
	// tokens, each a new entry.
	maxDecisions = 1024
)

// MetricsAuth is the metrics server's filter with --metrics-secure: a
// request passes only with a bearer token that the API server
// authenticates (a TokenReview) and whose user it allows the request's verb
// on the request's non-resource path (a SubjectAccessReview, e.g. "get" on
// /metrics, which the kuryr-dpdk-metrics-reader ClusterRole grants). No
// token or one the API server does not accept is 401, a user without the
// permission 403, a review that failed 500.
//
// It does what controller-runtime's filters.WithAuthenticationAndAuthorization
// does, with client-go's typed review clients instead of k8s.io/apiserver's
// delegating authenticator and authorizer, which linked the API server's
// authentication stack (CEL, gRPC, OpenTelemetry) into both binaries: about
// 20 MB of kuryr-controller's 55 MB, most of it mapped into its RSS.
func MetricsAuth(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	r, err := newReviewer(cfg, hc)
	if err != nil {
		return nil, err
	}
	return r.filter, nil
}

func newReviewer(cfg *rest.Config, hc *http.Client) (*reviewer, error) {
	authn, err := authnclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authz, err := authzclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	return &reviewer{tokens: authn.TokenReviews(), access: authz.SubjectAccessReviews(), cache: map[[sha256.Size]byte]decision{}, now: time.Now}, nil
}

// filter lets a request through to next only when review allows it.
func (r *reviewer) filter(log logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		d := r.review(req.Context(), log, bearer(req), strings.ToLower(req.Method), req.URL.Path)
		if d.status != http.StatusOK {
			http.Error(w, d.message, d.status)
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}

// bearer is the request's bearer token, empty when it has none.
func bearer(req *http.Request) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

type reviewer struct {
	tokens authnclient.TokenReviewInterface
	access authzclient.SubjectAccessReviewInterface
	now    func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]decision
}

// decision is a review's answer: status is the HTTP status to answer
// (200: let the request through) with message.
type decision struct {
	status  int
	message string
	expires time.Time
}

// review answers whether the holder of token may do verb on path, from the
// cache or by asking the API server.
func (r *reviewer) review(ctx context.Context, log logr.Logger, token, verb, path string) decision {
	if token == "" {
		return decision{status: http.StatusUnauthorized, message: "Unauthorized: no bearer token"}
	}
	key := sha256.Sum256([]byte(verb + "\x00" + path + "\x00" + token))
	now := r.now()
	r.mu.Lock()
	d, ok := r.cache[key]
	r.mu.Unlock()
	if ok && now.Before(d.expires) {
		return d
	}
	d, cache := r.ask(ctx, log, token, verb, path)
	if !cache {
		return d
	}
	ttl := denyTTL
	if d.status == http.StatusOK {
		ttl = allowTTL
	}
	d.expires = now.Add(ttl)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= maxDecisions {
		for k, old := range r.cache {
			if !now.Before(old.expires) {
				delete(r.cache, k)
			}
		}
		if len(r.cache) >= maxDecisions {
			clear(r.cache)
		}
	}
	r.cache[key] = d
	return d
}

// ask makes the TokenReview and then the SubjectAccessReview; cache is
// false when a review failed (the answer is 500 and asked again next
// time).
func (r *reviewer) ask(ctx context.Context, log logr.Logger, token, verb, path string) (d decision, cache bool) {
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	tr, err := r.tokens.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		log.Error(err, "metrics: TokenReview failed")
		return decision{status: http.StatusInternalServerError, message: "Authentication failed"}, false
	}
	if !tr.Status.Authenticated {
		log.V(4).Info("metrics: token not authenticated", "error", tr.Status.Error)
		return decision{status: http.StatusUnauthorized, message: "Unauthorized"}, true
	}
	u := tr.Status.User
	extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	sar, err := r.access.Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		log.Error(err, "metrics: SubjectAccessReview failed", "user", u.Username)
		return decision{status: http.StatusInternalServerError, message: fmt.Sprintf("Authorization for user %s failed", u.Username)}, false
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		log.V(4).Info("metrics: access denied", "user", u.Username, "reason", sar.Status.Reason)
		return decision{status: http.StatusForbidden, message: fmt.Sprintf("Forbidden: user %s may not %s %s", u.Username, verb, path)}, true
	}
	return decision{status: http.StatusOK}, true
}
