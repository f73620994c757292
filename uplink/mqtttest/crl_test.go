package mqtttest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dock/uplink/mqttconn"
	"dock/uplink/mqtttest"
)

// A stolen dock is cut off by revoking its certificate: a real mosquitto with the CA's
// CRL (crlfile, as the shipped config sets it) refuses the revoked dock and admits the rest.
func TestRevokedDockCannotConnect(t *testing.T) {
	dir := t.TempDir()
	pki := mqtttest.NewPKI(t, dir)
	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte("topic readwrite #\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stolenCert, stolenKey := pki.Issue("dock-stolen", false)
	goodCert, goodKey := pki.Issue("dock-good", false)
	crl := pki.Revoke(stolenCert)
	mq := mqtttest.StartTLS(t, pki, acl, mqtttest.WithCRL(crl))

	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		cn, cert, key string
		ok            bool
	}{
		{"dock-good", goodCert, goodKey, true},
		{"dock-stolen", stolenCert, stolenKey, false},
	} {
		t.Run(tc.cn, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(tc.cert, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: mq.URL, ClientID: tc.cn, CleanSession: true,
				TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}, quiet)
			if c != nil {
				defer c.Close()
			}
			if tc.ok && err != nil {
				t.Fatalf("unrevoked dock refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("revoked dock connected")
			}
		})
	}
}

// The broker config the fleet is shipped carries the CRL, with the TLS directives the
// test above runs mosquitto with.
func TestShippedBrokerConfigRevokes(t *testing.T) {
	b, err := os.ReadFile("../../build/mosquitto/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			have[f[0]] = f[1]
		}
	}
	for key, want := range map[string]string{"crlfile": "", "cafile": "", "require_certificate": "true", "use_identity_as_username": "true", "allow_anonymous": "false"} {
		got, ok := have[key]
		if !ok || (want != "" && got != want) {
			t.Errorf("shipped mosquitto.conf: %s = %q (set: %v), want %q (empty: any value)", key, got, ok, want)
		}
	}
}
