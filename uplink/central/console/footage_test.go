package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dock/uplink/central"
	"dock/uplink/central/fleet"
	"dock/uplink/wire"
)

// footageConsole is a console over a real fleet database holding one recording of
// dock-a whose filed bytes are body, requested by sup and approved by appr; it returns
// the server, the database and sup's session cookie.
func footageConsole(t *testing.T, name, body string) (*httptest.Server, *fleet.DB, *http.Cookie) {
	srv, db, _, cookie := footageConsoleSignIn(t, name, body)
	return srv, db, cookie
}

// footageConsoleSignIn is footageConsole, with a function that signs sup in again.
func footageConsoleSignIn(t *testing.T, name, body string) (*httptest.Server, *fleet.DB, func() *http.Cookie, *http.Cookie) {
	t.Helper()
	db, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	file := filepath.Join(t.TempDir(), "r1")
	if err := os.WriteFile(file, []byte(body), 0o400); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := New(ctx, Options{DB: db, Docks: &recordingDispatcher{}, Log: discardLog(),
		Footage: func(dock, id string) (string, error) { return file, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RecordingFiled("dock-a", central.Stored{Meta: wire.RecordingMeta{ID: "r1", Name: name, Device: "CAM-1", Class: "patrol",
		Start: time.Now().Add(-time.Hour)}, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	pw, err := db.AddUser("sup", fleet.RoleSupervisor, "setup")
	if err != nil {
		t.Fatal(err)
	}
	rid, err := db.RequestView("dock-a", "r1", "complaint 12", "sup")
	if err == nil {
		err = db.ApproveView(rid, "appr")
	}
	if err != nil {
		t.Fatal(err)
	}
	signIn := func() *http.Cookie {
		token, _, err := db.Login("sup", pw)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Cookie{Name: "console", Value: token}
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, db, signIn, signIn()
}

func getWith(t *testing.T, url string, c *http.Cookie) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.AddCookie(c)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// Footage is whatever bytes a dock uploaded: a hostile dock's "recording" of HTML must not
// be served as a page of the console's origin. It goes out as video by its name's
// extension or as opaque bytes, sandboxed.
func TestFootageIsNeverServedAsAPage(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"VID_0001.html", "<!doctype html><html><body><form action=/users method=post><script>alert(1)</script>", "application/octet-stream"},
		{"VID_0002", "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "application/octet-stream"},
		{"VID_0003.MP4", "<html><script>alert(1)</script>", "video/mp4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _, cookie := footageConsole(t, c.name, c.body)
			resp := getWith(t, srv.URL+"/evidence/view/1", cookie)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("approved view: %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != c.want {
				t.Errorf("footage served as %q, want %q", got, c.want)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
				t.Errorf("footage's Content-Security-Policy %q lacks sandbox", csp)
			}
		})
	}
}

// An approval lets who asked view the footage for fleet.ViewWindow; after that the same
// link is refused, and a new request needs a new approval.
func TestViewLinkEndsAfterTheWindow(t *testing.T) {
	srv, db, signIn, cookie := footageConsoleSignIn(t, "VID_0001.MP4", "footage")
	if resp := getWith(t, srv.URL+"/evidence/view/1", cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("view within the window: %d", resp.StatusCode)
	}
	// A player's range request is a view like any other: allowed, and audited.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/evidence/view/1", nil)
	req.Header.Set("Range", "bytes=2-4")
	req.AddCookie(cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(part) != "ota" {
		t.Fatalf("range view: %d %q, want 206 \"ota\"", resp.StatusCode, part)
	}
	if lines, _ := db.AuditLog("view", 10); len(lines) != 4 || lines[0].Action != "view" || lines[1].Action != "view" {
		t.Fatalf("views audited: %+v, want the request, the approval and 2 views", lines)
	}
	db.UseClock(func() time.Time { return time.Now().Add(fleet.ViewWindow + time.Minute) })
	cookie = signIn() // the first session ended, idle
	for _, rng := range []string{"", "bytes=0-0"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/evidence/view/1", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		req.AddCookie(cookie)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("view %v after the approval (range %q): %d, want 403", fleet.ViewWindow+time.Minute, rng, resp.StatusCode)
		}
	}
}
