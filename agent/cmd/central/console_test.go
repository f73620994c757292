package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"dock/uplink/central"
	"dock/uplink/central/fleet"
	"dock/uplink/mqtttest"
)

// -add-user prints a one-time password that signs the user in; the console over TLS sets
// its session cookie Secure, HttpOnly, SameSite=Strict, under the __Host- prefix.
func TestAddUserAndConsoleOverTLS(t *testing.T) {
	dir := t.TempDir()
	r, w, _ := os.Pipe()
	stdout := os.Stdout
	os.Stdout = w
	err := addUser(dir, "chief", "admin")
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`shown only now:\n(\S{16,})\n`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("-add-user printed %q: no one-time password", out)
	}
	if err := addUser(dir, "chief", "admin"); err == nil {
		t.Fatal("a second chief was created")
	}
	if err := addUser(dir, "bob", "root"); err == nil {
		t.Fatal("a user with an unknown role was created")
	}

	pki := mqtttest.NewPKI(t, t.TempDir())
	cert, key := pki.Issue("console", true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	db, err := fleet.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveConsole(ctx, addr, cert, key, false, db, nil, central.FileStore{Dir: dir}, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console: %v", err)
		}
	}()
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(pki.CAFile)
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	for range 50 {
		if resp, err = client.PostForm("https://"+addr+"/login", url.Values{"user": {"chief"}, "password": {string(m[1])}}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(c, "__Host-console=") {
		t.Fatalf("login over TLS: %d, cookie %q", resp.StatusCode, c)
	}
	for _, want := range []string{"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(c, want) {
			t.Errorf("cookie %q lacks %s", c, want)
		}
	}
}

// Without TLS the console serves loopback only: a password or a session cookie sent in
// clear over the office network is refused at start, unless -console-insecure-http says so.
func TestConsoleWithoutTLSServesLoopbackOnly(t *testing.T) {
	for _, c := range []struct {
		addr  string
		plain bool
		ok    bool
	}{
		{"127.0.0.1:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{":8080", false, false},
		{"0.0.0.0:8080", false, false},
		{"192.0.2.7:8080", false, false},
		{"console.example:8080", false, false},
		{"0.0.0.0:8080", true, true},
		{"no-port", false, false},
	} {
		err := plainHTTPAllowed(c.addr, c.plain)
		if (err == nil) != c.ok {
			t.Errorf("plain HTTP on %s (-console-insecure-http %v): %v, want allowed %v", c.addr, c.plain, err, c.ok)
		}
	}
	err := serveConsole(context.Background(), "0.0.0.0:0", "", "", false, nil, nil, central.FileStore{Dir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "-console-cert") {
		t.Fatalf("serving plain HTTP on every interface: %v, want a refusal naming -console-cert", err)
	}
}
