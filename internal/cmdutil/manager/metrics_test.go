package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// writeKubeconfig writes cfg's server and credentials as a kubeconfig file,
// the way the binaries get them (--kubeconfig).
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts["x"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "x"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// token makes the ServiceAccount ns/name and returns a token for it.
func token(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape GETs url with the bearer token (none when empty) and returns the
// status, retrying while nothing listens yet (connection refused).
func scrape(ctx context.Context, t *testing.T, url, bearer string) int {
	t.Helper()
	// The server's certificate is self-signed: what is checked here is who
	// may read, not the server's identity.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && !strings.Contains(string(body), "# HELP") {
				t.Errorf("GET %s: 200 without metrics: %.200s", url, body)
			}
			return resp.StatusCode
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("GET %s: %v", url, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: %v", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestSecureMetricsNeedTheReaderRole runs the manager of each binary as its
// deployed ServiceAccount (deploy/kuryr-dpdk/rbac.yaml) with the default
// --metrics-secure, and scrapes it: no token 401, a token without the
// kuryr-dpdk-metrics-reader role 403, with it 200.
func TestSecureMetricsNeedTheReaderRole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := testenv.Apply(ctx, env.Config, "../../../deploy/kuryr-dpdk/rbac.yaml"); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(env.Config)
	reader, stranger := token(ctx, t, cs, "kuryr-dpdk", "scraper"), token(ctx, t, cs, "kuryr-dpdk", "stranger")
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "scraper-reads-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kuryr-dpdk-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: "kuryr-dpdk"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, sa := range []string{"kuryr-controller", "kuryr-daemon"} {
		t.Run(sa, func(t *testing.T) {
			cfg, err := env.ServiceAccountConfig("kuryr-dpdk", sa)
			if err != nil {
				t.Fatal(err)
			}
			f := Flags{Kube: cmdutil.KubeClient{Kubeconfig: writeKubeconfig(t, cfg), QPS: 20, Burst: 40},
				MetricsAddr: freeAddr(t), MetricsSecure: true, ProbeAddr: "0"}
			startManager(ctx, t, &f)
			url := fmt.Sprintf("https://%s/metrics", f.MetricsAddr)
			for _, c := range []struct {
				who, token string
				want       int
			}{{"no token", "", 401}, {"a token without the role", stranger, 403}, {"a token with the role", reader, 200}} {
				if got := scrape(ctx, t, url, c.token); got != c.want {
					t.Errorf("scrape with %s: HTTP %d, want %d", c.who, got, c.want)
				}
			}
		})
	}
}

// TestMetricsShowClientThrottling: a manager's /metrics serve how long its
// Kubernetes client's requests waited for the client-side limit
// (rest_client_rate_limiter_duration_seconds) and for the API server
// (rest_client_request_duration_seconds). Four GETs at --kube-api-qps=2
// and --kube-api-burst=1 wait about 1.5 s for the limit in all.
func TestMetricsShowClientThrottling(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := Flags{Kube: cmdutil.KubeClient{Kubeconfig: writeKubeconfig(t, env.Config), QPS: 2, Burst: 1},
		MetricsAddr: freeAddr(t), ProbeAddr: "0"}
	mgr := startManager(ctx, t, &f)
	for range 4 {
		var ns corev1.Namespace
		if err := mgr.GetAPIReader().Get(ctx, types.NamespacedName{Name: metav1.NamespaceSystem}, &ns); err != nil {
			t.Fatal(err)
		}
	}
	url := fmt.Sprintf("http://%s/metrics", f.MetricsAddr)
	if got := scrape(ctx, t, url, ""); got != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d", url, got)
	}
	body := get(ctx, t, url)
	if throttled := sumOf(t, body, "rest_client_rate_limiter_duration_seconds_sum"); throttled < 1 {
		t.Errorf("rest_client_rate_limiter_duration_seconds_sum = %.3f s, want ≥ 1 s (4 GETs at 2/s, burst 1)", throttled)
	}
	if n := sumOf(t, body, "rest_client_request_duration_seconds_count"); n < 4 {
		t.Errorf("rest_client_request_duration_seconds_count = %v, want ≥ 4", n)
	}
}

// startManager builds the manager of f and runs it until the test ends.
func startManager(ctx context.Context, t *testing.T, f *Flags) ctrl.Manager {
	t.Helper()
	mgr, err := f.New(ctrl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Start(mctx, mgr) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return mgr
}

// get returns what url answers.
func get(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sumOf adds up the samples of metric name (every label set) in a
// Prometheus text page; a page without it fails the test.
func sumOf(t *testing.T, page, name string) float64 {
	t.Helper()
	sum, found := 0.0, false
	for line := range strings.Lines(page) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			t.Fatalf("metric line %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		t.Fatalf("/metrics has no %s", name)
	}
	return sum
}

// countReviews counts the TokenReviews and SubjectAccessReviews sent
// through it.
type countReviews struct {
	base         http.RoundTripper
	tokens, sars atomic.Int32
}

func (c *countReviews) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case strings.HasSuffix(req.URL.Path, "/tokenreviews"):
		c.tokens.Add(1)
	case strings.HasSuffix(req.URL.Path, "/subjectaccessreviews"):
		c.sars.Add(1)
	}
	return c.base.RoundTrip(req)
}

// TestMetricsAuthReviewsOncePerTokenAndPath: MetricsAuth, against a real API
// server, asks it (one TokenReview, one SubjectAccessReview) the first time
// a token comes for a verb and path and answers the same again from its
// cache; another path is reviewed again; a refusal is kept for denyTTL and
// reviewed again after it (a role granted meanwhile then lets the token in);
// an Authorization header that is not a bearer token, or a token the API
// server does not know, is 401.
func TestMetricsAuthReviewsOncePerTokenAndPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metricsauth"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok := token(ctx, t, cs, "metricsauth", "late-reader")
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	counter := &countReviews{base: hc.Transport}
	hc.Transport = counter
	r, err := newReviewer(env.Config, hc)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	h, err := r.filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") }))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(path, authorization string) int {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	step := func(what, path, authorization string, want int, tokens, sars int32) {
		t.Helper()
		if got := serve(path, authorization); got != want {
			t.Errorf("%s: HTTP %d, want %d", what, got, want)
		}
		if gt, gs := counter.tokens.Load(), counter.sars.Load(); gt != tokens || gs != sars {
			t.Errorf("%s: %d TokenReviews and %d SubjectAccessReviews so far, want %d and %d", what, gt, gs, tokens, sars)
		}
	}
	step("basic credentials", "/metrics", "Basic dXNlcjpwYXNz", 401, 0, 0)
	step("an unknown token", "/metrics", "Bearer not-a-token", 401, 1, 0)
	step("the token without a role", "/metrics", "Bearer "+tok, 403, 2, 1)
	step("the same again, from the cache", "/metrics", "bearer "+tok, 403, 2, 1)

	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "metricsauth-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metricsauth-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metricsauth-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "late-reader", Namespace: "metricsauth"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	step("role granted, refusal still cached", "/metrics", "Bearer "+tok, 403, 2, 1)
	now = now.Add(denyTTL)
	// RBAC's authorizer follows bindings through its informers: wait for it.
	deadline := time.Now().Add(30 * time.Second)
	for serve("/metrics", "Bearer "+tok) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the token is still refused 30 s after its role was granted")
		}
		now = now.Add(denyTTL)
		time.Sleep(100 * time.Millisecond)
	}
	tokens, sars := counter.tokens.Load(), counter.sars.Load()
	step("allowed, from the cache", "/metrics", "Bearer "+tok, 200, tokens, sars)
	step("another path", "/debug", "Bearer "+tok, 403, tokens+1, sars+1)
}

// TestNoCompressionByDefault: a manager built from the default flags
// serves /metrics uncompressed to a scraper that accepts gzip, and its
// Kubernetes client does not ask for compressed responses;
// --kube-api-compression turns the client's back on.
func TestNoCompressionByDefault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := Flags{Kube: cmdutil.KubeClient{Kubeconfig: writeKubeconfig(t, env.Config), QPS: 20, Burst: 40},
		MetricsAddr: freeAddr(t), ProbeAddr: "0"}
	mgr := startManager(ctx, t, &f)
	if !mgr.GetConfig().DisableCompression {
		t.Error("the manager's Kubernetes client asks for compressed responses by default")
	}
	url := fmt.Sprintf("http://%s/metrics", f.MetricsAddr)
	if got := scrape(ctx, t, url, ""); got != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d", url, got)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: the transport then leaves the body as sent
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" || !strings.Contains(string(body), "# HELP") {
		t.Errorf("GET %s accepting gzip: Content-Encoding %q, body %.80q; want plain text", url, enc, body)
	}

	f.Kube.Compression = true
	cfg, err := f.Kube.Config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DisableCompression {
		t.Error("with --kube-api-compression the client still refuses compressed responses")
	}
}
