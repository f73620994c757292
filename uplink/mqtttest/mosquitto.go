// Package mqtttest starts a real mosquitto broker on a free loopback port for tests. Test
// support only: it is never linked into a program.
package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Broker is a running mosquitto.
type Broker struct {
	URL  string
	Port int
	conf string
	cmd  *exec.Cmd
	t    testing.TB
}

// Binary finds mosquitto, or says why not.
func Binary() (string, error) {
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("mosquitto not installed (Debian: apt-get install mosquitto)")
}

// Start runs mosquitto with a plain listener on a free loopback port plus extra config
// lines. Without mosquitto the test is skipped, or fails under CI, where it must exist.
func Start(t testing.TB, extra string) *Broker {
	return start(t, extra, false)
}

// TLSOption changes how StartTLS configures the broker.
type TLSOption func(*tlsOptions)

type tlsOptions struct {
	crlFile string
	ips     []net.IP
}

// WithServerIPs puts ips in the broker's certificate besides 127.0.0.1: 10.0.2.2 is the
// host's loopback as a qemu guest on user-mode networking sees it (build/vm).
func WithServerIPs(ips ...net.IP) TLSOption {
	return func(o *tlsOptions) { o.ips = append(o.ips, ips...) }
}

// WithCRL makes the broker refuse client certificates revoked in the PEM CRL at crlFile
// (mosquitto's crlfile, as the shipped build/mosquitto/mosquitto.conf sets it; PKI.Revoke
// writes one). mosquitto reads it at start: revoke first, or Restart.
func WithCRL(crlFile string) TLSOption { return func(o *tlsOptions) { o.crlFile = crlFile } }

// StartTLS runs mosquitto with only a TLS listener that requires a client certificate from
// pki's CA, takes the certificate's CN as the username, and applies the ACL file acl.
func StartTLS(t testing.TB, pki *PKI, acl string, opts ...TLSOption) *Broker {
	var o tlsOptions
	for _, f := range opts {
		f(&o)
	}
	cert, key := pki.Issue("broker", true, o.ips...)
	conf := fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuse_identity_as_username true\nacl_file %s\n", pki.CAFile, cert, key, acl)
	if o.crlFile != "" {
		conf += fmt.Sprintf("crlfile %s\n", o.crlFile)
	}
	b := start(t, conf, true)
	b.URL = fmt.Sprintf("ssl://127.0.0.1:%d", b.Port)
	return b
}

func start(t testing.TB, extra string, tls bool) *Broker {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: CI must install it", err)
		}
		t.Skipf("skipping: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("per_listener_settings false\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n", port)
	if tls {
		body = fmt.Sprintf("per_listener_settings false\nlistener %d 127.0.0.1\nallow_anonymous false\npersistence false\nlog_dest stderr\n", port)
	}
	if os.Geteuid() == 0 {
		body += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(body+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &Broker{URL: fmt.Sprintf("tcp://127.0.0.1:%d", port), Port: port, conf: conf, t: t}
	b.start(bin)
	t.Cleanup(b.Stop)
	return b
}

func (b *Broker) start(bin string) {
	b.t.Helper()
	b.cmd = exec.Command(bin, "-c", b.conf)
	logf, _ := os.Create(b.conf + ".log")
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(b.conf + ".log")
	b.t.Fatalf("mosquitto did not listen on %d: %s", b.Port, log)
}

// Stop kills the broker.
func (b *Broker) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
		b.cmd = nil
	}
}

// Up starts a stopped broker again on the same port.
func (b *Broker) Up() {
	b.t.Helper()
	bin, _ := Binary()
	b.start(bin)
}

// Restart stops the broker, waits for down, and starts it again on the same port.
func (b *Broker) Restart(down time.Duration) {
	b.t.Helper()
	b.Stop()
	time.Sleep(down)
	bin, _ := Binary()
	b.start(bin)
}
