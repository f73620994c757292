package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"dock/uplink/central/fleet"
)

// After signing in a person goes to the page they asked for, never to another site.
func TestLocalPath(t *testing.T) {
	for next, want := range map[string]string{
		"/faults":               "/faults",
		"/evidence?officer=O-1": "/evidence?officer=O-1",
		"":                      "/",
		"//evil.example/x":      "/",
		"/\\evil.example":       "/",
		"https://evil.example/": "/",
		"evil.example":          "/",
		"/x\r\nSet-Cookie: a=b": "/",
		"/\t/evil.example":      "/", // browsers drop tabs: //evil.example
		"/\n/evil.example":      "/",
	} {
		if got := localPath(next); got != want {
			t.Errorf("localPath(%q) = %q, want %q", next, got, want)
		}
	}
}

// Signing in always starts a new session (a cookie planted before is not taken up), and
// signing out ends it at central: the old cookie, replayed, reaches nothing.
func TestSignInAndOutAtCentral(t *testing.T) {
	db, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, Options{DB: db, Docks: &recordingDispatcher{}, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	pw, err := db.AddUser("maint", fleet.RoleMaintenance, "setup")
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path string, form url.Values, cookie string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "console", Value: cookie})
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Login CSRF: a page elsewhere signing the browser in (as the attacker) is refused.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/login", strings.NewReader(url.Values{"user": {"maint"}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := http.DefaultTransport.RoundTrip(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("a sign-in posted from another origin: %d, want 403 and no cookie", resp.StatusCode)
	}
	const planted = "planted-by-an-attacker"
	resp := do(http.MethodPost, "/login", url.Values{"user": {"maint"}, "password": {pw}}, planted)
	var token string
	for _, c := range resp.Cookies() {
		if c.Name == "console" {
			token = c.Value
		}
	}
	if resp.StatusCode != http.StatusSeeOther || token == "" || token == planted {
		t.Fatalf("sign-in: %d, session %q", resp.StatusCode, token)
	}
	if resp := do(http.MethodGet, "/faults", nil, planted); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the planted cookie reached /faults: %d", resp.StatusCode)
	}
	sess, err := db.Session(token)
	if err != nil {
		t.Fatal(err)
	}
	if resp := do(http.MethodGet, "/faults", nil, token); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in, /faults: %d", resp.StatusCode)
	}
	// A form with the right token, posted from another origin, is refused too.
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/logout", strings.NewReader(url.Values{"csrf": {sess.CSRF}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.AddCookie(&http.Cookie{Name: "console", Value: token})
	if resp, err := http.DefaultTransport.RoundTrip(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a sign-out posted from another origin: %d, want 403", resp.StatusCode)
	}
	// Signing in again in the same browser (another person at a shared PC, say) ends the
	// session its cookie held.
	resp = do(http.MethodPost, "/login", url.Values{"user": {"maint"}, "password": {pw}}, token)
	previous := token
	for _, c := range resp.Cookies() {
		if c.Name == "console" {
			token = c.Value
		}
	}
	if token == previous {
		t.Fatalf("signing in again: %d, no new session", resp.StatusCode)
	}
	if _, err := db.Session(previous); err == nil {
		t.Fatal("signing in again left the browser's previous session alive at central")
	}
	if sess, err = db.Session(token); err != nil {
		t.Fatal(err)
	}
	if resp := do(http.MethodPost, "/logout", url.Values{"csrf": {sess.CSRF}}, token); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if resp := do(http.MethodGet, "/faults", nil, token); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Ffaults" {
		t.Fatalf("the signed-out cookie replayed, /faults: %d %s, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := do(http.MethodPost, "/faults/step", url.Values{"csrf": {sess.CSRF}}, token); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the signed-out cookie replayed on a form: %d, want 401", resp.StatusCode)
	}
}
