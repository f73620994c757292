package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to write and read from two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// make run prints the console's address and a one-time admin password that signs in, and
// the fault of the docked camera with a worn battery reaches the inbox; it stops when
// asked (Ctrl-C is its context ending).
func TestRunPrintsAConsoleThatSignsIn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, &out, filepath.Join(t.TempDir(), "run"), addr, 1, false) }()
	var m []string
	for deadline := time.Now().Add(60 * time.Second); m == nil; time.Sleep(100 * time.Millisecond) {
		m = regexp.MustCompile(`console:  (\S+)\nuser:     (\S+)\npassword: (\S+)`).FindStringSubmatch(out.String())
		if time.Now().After(deadline) {
			t.Fatalf("no console address and password printed within 60 s:\n%s", out.String())
		}
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm(m[1]+"/login", url.Values{"user": {m[2]}, "password": {m[3]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
		t.Fatalf("sign in with the printed password: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	var body []byte
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(string(body), "CAM-0002/battery-worn"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worn battery's fault is not in the inbox:\n%s", body)
		}
		r, err := c.Get(m[1] + "/faults")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "stopping") {
		t.Fatalf("did not say it stopped:\n%s", out.String())
	}
}

// An earlier run's directory is wiped; any other is refused.
func TestPrepareWipesOnlyAnEarlierRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepare(dir); err == nil {
		t.Fatal("a directory holding no earlier run was wiped")
	}
	run := filepath.Join(t.TempDir(), "run")
	if err := prepare(run); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(run, "old"), []byte("x"), 0o400)
	if err := prepare(run); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(run, "old")); !os.IsNotExist(err) {
		t.Fatalf("an earlier run's file survived: %v", err)
	}
}

// make run serves its console without TLS, with an admin password on the screen: on
// loopback only. Any other address is refused before anything starts.
func TestRunServesLoopbackOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.7:8080"} {
		err := run(ctx, io.Discard, t.TempDir(), addr, 1, false)
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("make run on %s: %v, want a refusal naming loopback", addr, err)
		}
	}
}
