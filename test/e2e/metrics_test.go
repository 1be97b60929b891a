package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// daemonMetricsAddr is where deploy/kuryr-dpdk/daemon.yaml serves
// kuryr-daemon's metrics (HTTPS, --metrics-secure), in the node's network
// namespace (the DaemonSet's pods use the host's network).
const daemonMetricsAddr = "127.0.0.1:9090"

// metricsScraper makes a ServiceAccount in namespace bound to the
// ClusterRole deploy/ gives scrapers (kuryr-dpdk-metrics-reader) and
// returns a token of it, as a Prometheus in the cluster would hold.
func metricsScraper(t *testing.T, ctx context.Context, namespace string) string {
	t.Helper()
	const name = "e2e-metrics-scraper"
	sa, err := env.Clientset.CoreV1().ServiceAccounts(namespace).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kuryr-dpdk-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: sa.Name}},
	}
	if _, err := env.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := env.Clientset.RbacV1().ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete ClusterRoleBinding %s: %v", binding.Name, err)
		}
	})
	tok, err := env.Clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa.Name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}

// daemonMetrics scrapes node's kuryr-daemon with token (metricsScraper's)
// from inside the node's network namespace and returns its samples, keyed
// as the text format writes them (`name{label="value",...}`).
func daemonMetrics(t *testing.T, ctx context.Context, node *aio.Node, token string) map[string]float64 {
	t.Helper()
	body, err := scrape(ctx, node.NetNS, token)
	if err != nil {
		t.Fatalf("scrape kuryr-daemon's metrics on node %s (%s): %v", node.Name, daemonMetricsAddr, err)
	}
	samples := map[string]float64{}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			samples[key] = v
		}
	}
	return samples
}

// scrape GETs /metrics from daemonMetricsAddr in the network namespace
// netns: the connection is made in that namespace (on a thread that enters
// it), then spoken over as any HTTPS client would, the daemon's own
// self-signed certificate accepted.
func scrape(ctx context.Context, netns, token string) (string, error) {
	var conn net.Conn
	err := ns.WithNetNSPath(netns, func(ns.NetNS) error {
		var err error
		conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", daemonMetricsAddr)
		return err
	})
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the daemon's self-signed serving certificate, on loopback
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+daemonMetricsAddr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Close = true
	if err := req.Write(tc); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}
