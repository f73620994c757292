package browsertest

import (
	"bytes"
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// The harness itself, against a page of its own: Chromium starts, signs in through a form,
// keeps each person's session apart from the others', reads the HTTP status a page
// answered with, and writes a screenshot that is a PNG of the browser's size.
func TestHarness(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<html><body><form method="post" action="/login"><input id="user" name="user"><input id="password" name="password" type="password"><button id="signin">Sign in</button></form></body></html>`)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("password") != "pw-"+r.FormValue("user") {
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "who", Value: r.FormValue("user"), HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("who")
		if err != nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		fmt.Fprintf(w, `<html><body><h1 id="who">signed in as %s</h1></body></html>`, html.EscapeString(c.Value))
	})
	mux.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "admins only", http.StatusForbidden) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	browser := startBrowser(t)
	ann := newPerson(t, browser, srv.URL, "ann")
	bob := newPerson(t, browser, srv.URL, "bob")
	ann.login("ann", "pw-ann")
	if got := ann.text("#who"); got != "signed in as ann" {
		t.Fatalf("ann sees %q", got)
	}
	bob.open("/")
	if got := bob.text("body"); !strings.Contains(got, "Sign in") {
		t.Fatalf("bob, never signed in, sees %q: the people share a session", got)
	}
	bob.login("bob", "pw-bob")
	if got := bob.text("#who"); got != "signed in as bob" {
		t.Fatalf("bob sees %q", got)
	}
	ann.open("/")
	if got := ann.text("#who"); got != "signed in as ann" {
		t.Fatalf("ann, after bob signed in, sees %q", got)
	}
	if s := ann.statusOf("/admin"); s != http.StatusForbidden {
		t.Fatalf("/admin answered %d, want 403", s)
	}
	ann.open("/")
	path := ann.screenshot("harness-selftest")
	defer os.Remove(path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w != 1280 {
		t.Fatalf("screenshot %d px wide, want the window's 1280", w)
	}
}
