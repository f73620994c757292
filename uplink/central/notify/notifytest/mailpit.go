package notifytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"dock/uplink/mqtttest"
)

// MailpitModule is the mailpit that Mailpit installs when it finds none.
const MailpitModule = "github.com/axllent/mailpit@v1.33.1"

// Mailpit is a real SMTP server (mailpit) on loopback for one test: STARTTLS required under
// a test CA, AUTH PLAIN with User and Password, and an HTTP API to read what arrived.
type Mailpit struct {
	SMTPAddr string // 127.0.0.1:port
	CAFile   string // the roots for its certificate
	User     string
	Password string
	API      string // http://127.0.0.1:port
}

// mailpitBinary finds mailpit on PATH or in build/out/tools, else installs it there with
// go install (build/deps.sh does the same for make test).
func mailpitBinary(t testing.TB) (string, error) {
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	tools := filepath.Join(root, "build", "out", "tools")
	bin := filepath.Join(tools, "mailpit")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	t.Logf("mailpit not found: go install %s into %s", MailpitModule, tools)
	cmd := exec.Command("go", "install", MailpitModule)
	// The host's build: this test may itself run emulated (GOARCH=arm64 under qemu-user).
	cmd.Env = append(os.Environ(), "GOBIN="+tools, "GOOS=", "GOARCH=", "GOARM=", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %v\n%s", MailpitModule, err, out)
	}
	return bin, nil
}

// repoRoot is the module's root, found upwards from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = up
	}
}

// freePort is a loopback port free a moment ago.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// MailpitOption changes how StartMailpit runs mailpit.
type MailpitOption string

// ImplicitTLS makes mailpit speak TLS from the first byte (SMTPS, as on port 465) instead
// of requiring STARTTLS.
const ImplicitTLS MailpitOption = "--smtp-require-tls"

// StartMailpit runs mailpit until the test ends. Without mailpit, and when it cannot be
// installed, the test is skipped, or fails under CI, where it must be had.
func StartMailpit(t testing.TB, opts ...MailpitOption) *Mailpit {
	t.Helper()
	bin, err := mailpitBinary(t)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: CI must have mailpit (build/deps.sh installs it)", err)
		}
		t.Skipf("skipping: no mailpit: %v", err)
	}
	dir := t.TempDir()
	pki := mqtttest.NewPKI(t, dir)
	cert, key := pki.Issue("mailpit", true)
	m := &Mailpit{CAFile: pki.CAFile, User: "central", Password: "mail-secret-" + fmt.Sprint(time.Now().UnixNano())}
	auth := filepath.Join(dir, "smtp-auth")
	if err := os.WriteFile(auth, []byte(m.User+":"+m.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for try := 0; try < 3; try++ { // a port taken between freePort and mailpit's listen
		smtpPort, httpPort := freePort(t), freePort(t)
		m.SMTPAddr = fmt.Sprintf("127.0.0.1:%d", smtpPort)
		m.API = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
		var logb bytes.Buffer
		tlsMode := "--smtp-require-starttls"
		for _, o := range opts {
			if o == ImplicitTLS {
				tlsMode = string(o)
			}
		}
		cmd := exec.Command(bin, "--smtp", m.SMTPAddr, "--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
			"--database", filepath.Join(dir, fmt.Sprintf("mailpit-%d.db", try)), "--disable-version-check",
			"--smtp-tls-cert", cert, "--smtp-tls-key", key, tlsMode,
			"--smtp-auth-file", auth, "--smtp-disable-rdns", "--pop3", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		cmd.Stdout, cmd.Stderr = &logb, &logb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = m.waitReady(exited); lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("mailpit's log:\n%s", logb.String())
				}
			})
			return m
		}
		_ = cmd.Process.Kill()
		<-exited
		lastErr = fmt.Errorf("%w; its log:\n%s", lastErr, logb.String())
	}
	t.Fatalf("mailpit did not start: %v", lastErr)
	return nil
}

// waitReady waits for the API to answer and the SMTP port to take a connection.
func (m *Mailpit) waitReady(exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("mailpit exited: %v", err)
		default:
		}
		resp, err := http.Get(m.API + "/api/v1/messages")
		if err == nil {
			resp.Body.Close()
			if c, err := net.DialTimeout("tcp", m.SMTPAddr, time.Second); err == nil && resp.StatusCode == 200 {
				c.Close()
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("mailpit not ready after 20 s (GOARCH %s)", runtime.GOARCH)
}

// Address is a sender or recipient as mailpit reports it.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Mail is a message mailpit took, as its API reports it.
type Mail struct {
	ID        string    `json:"ID"`
	MessageID string    `json:"MessageID"`
	From      Address   `json:"From"`
	To        []Address `json:"To"`
	Subject   string    `json:"Subject"`
	Text      string    `json:"Text"` // the decoded plain-text body
	Raw       string    `json:"-"`    // the message as received
}

// Messages returns every message mailpit holds, newest first, with their bodies.
func (m *Mailpit) Messages(t testing.TB) []Mail {
	t.Helper()
	var list struct {
		Messages []Mail `json:"messages"`
	}
	m.get(t, "/api/v1/messages", &list)
	for i := range list.Messages {
		var full Mail
		m.get(t, "/api/v1/message/"+list.Messages[i].ID, &full)
		list.Messages[i].Text = full.Text
		resp, err := http.Get(m.API + "/api/v1/message/" + list.Messages[i].ID + "/raw")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		list.Messages[i].Raw = string(raw)
	}
	return list.Messages
}

// WaitMessages waits up to timeout for at least n messages and returns them.
func (m *Mailpit) WaitMessages(t testing.TB, n int, timeout time.Duration) []Mail {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ms := m.Messages(t)
		if len(ms) >= n || time.Now().After(deadline) {
			return ms
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *Mailpit) get(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.API + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("mailpit %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("mailpit %s: %v", path, err)
	}
}
