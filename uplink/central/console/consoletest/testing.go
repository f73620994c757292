package consoletest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"dock/uplink/central/fleet"
	"dock/uplink/mqtttest"
)

func jsonOf(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// Start launches an office for a test over a real mosquitto (skipped, saying why, where
// mosquitto cannot be had outside CI), in t's temporary directory, closed at its end.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	mq := mqtttest.Start(t, "")
	o.Broker = mq.URL
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Log == nil && testing.Verbose() {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := Launch(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// AddUser creates a person with role and returns their one-time password.
func (e *Env) AddUser(t testing.TB, name string, role fleet.Role) string {
	t.Helper()
	pw, err := e.DB.AddUser(name, role, e.AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

// Client is a signed-in person's browser, without the browser: cookies, and the CSRF
// token its forms carry.
type Client struct {
	Base string
	HTTP *http.Client
	CSRF string
	t    testing.TB
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Login signs name in with password and returns their client.
func (e *Env) Login(t testing.TB, name, password string) *Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &Client{Base: e.URL, HTTP: &http.Client{Jar: jar, Timeout: 30 * time.Second}, t: t}
	code, body := c.Post("/login", url.Values{"user": {name}, "password": {password}})
	if code != http.StatusOK {
		t.Fatalf("login %s: %d %s", name, code, body)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("login %s: no CSRF token on the page after signing in", name)
	}
	c.CSRF = m[1]
	return c
}

// Get fetches a page (following redirects) and returns its status and body.
func (c *Client) Get(path string) (int, string) {
	c.t.Helper()
	resp, err := c.HTTP.Get(c.Base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Post submits a form with the client's CSRF token (unless form sets "csrf") and returns
// the status and body of the page it leads to.
func (c *Client) Post(path string, form url.Values) (int, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, set := form["csrf"]; !set && c.CSRF != "" {
		form.Set("csrf", c.CSRF)
	}
	resp, err := c.HTTP.PostForm(c.Base+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WaitPage fetches path until its body holds want, or fails t after timeout.
func (c *Client) WaitPage(path, want string, timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, body := c.Get(path)
		if strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %q did not appear within %s; last page:\n%s", path, want, timeout, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
