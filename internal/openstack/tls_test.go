package openstack

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// startTLSSim serves a simulated cloud over HTTPS on 127.0.0.1 with
// httptest's self-signed certificate, requiring a client certificate signed
// by clientCA when it is set. It returns the cloud and the file holding the
// server's CA certificate (PEM).
func startTLSSim(t *testing.T, clientCA *x509.Certificate) (*cloudsim.Cloud, string) {
	t.Helper()
	sim := cloudsim.New(cloudsim.Options{})
	ts := httptest.NewUnstartedServer(sim)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA)
		ts.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	}
	ts.StartTLS()
	t.Cleanup(func() { sim.Close(); ts.Close() })
	sim.SetBaseURL(ts.URL)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, ca, "CERTIFICATE", ts.Certificate().Raw)
	return sim, ca
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cloudsYAML writes a clouds.yaml with one cloud "c" reaching sim with its
// password, plus the TLS lines given, and returns its path.
func cloudsYAML(t *testing.T, sim *cloudsim.Cloud, tlsLines ...string) string {
	t.Helper()
	cr := sim.Credentials()
	y := fmt.Sprintf(`clouds:
  c:
    auth:
      auth_url: %s
      username: %s
      password: %s
      project_name: %s
      user_domain_name: %s
      project_domain_name: %s
    region_name: %s
`, sim.AuthURL(), cr.UserName, cr.Password, cr.ProjectName, cr.DomainName, cr.DomainName, cr.Region)
	for _, l := range tlsLines {
		y += "    " + l + "\n"
	}
	file := filepath.Join(t.TempDir(), "clouds.yaml")
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestTLSUntrustedServerFails(t *testing.T) {
	t.Parallel()
	sim, _ := startTLSSim(t, nil)
	_, err := New(context.Background(), Config{Cloud: "c", CloudsFile: cloudsYAML(t, sim)})
	if !errors.Is(err, ErrTerminal) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("New against an untrusted certificate = %v, want a terminal error about the certificate", err)
	}
	t.Log(err)
}

func TestTLSCACertFromCloudsYAML(t *testing.T) {
	t.Parallel()
	sim, ca := startTLSSim(t, nil)
	c, err := New(context.Background(), Config{Cloud: "c", CloudsFile: cloudsYAML(t, sim, "cacert: "+ca)})
	if err != nil {
		t.Fatal(err)
	}
	works(t, sim, c)
}

func TestTLSVerifyFalseFromCloudsYAML(t *testing.T) {
	t.Parallel()
	sim, _ := startTLSSim(t, nil)
	c, err := New(context.Background(), Config{Cloud: "c", CloudsFile: cloudsYAML(t, sim, "verify: false")})
	if err != nil {
		t.Fatal(err)
	}
	works(t, sim, c)
}

func TestTLSClientCertFromCloudsYAML(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kuryr-controller"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)

	sim, ca := startTLSSim(t, cert)
	if _, err := New(context.Background(), Config{Cloud: "c", CloudsFile: cloudsYAML(t, sim, "cacert: "+ca)}); err == nil {
		t.Fatal("a server that requires a client certificate accepted a client without one")
	}
	c, err := New(context.Background(), Config{Cloud: "c",
		CloudsFile: cloudsYAML(t, sim, "cacert: "+ca, "cert: "+certFile, "key: "+keyFile)})
	if err != nil {
		t.Fatal(err)
	}
	works(t, sim, c)
}
