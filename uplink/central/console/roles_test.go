package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"dock/uplink/central/fleet"
)

// Every form the console takes checks the role at central, not only in the page: each
// role posts straight to each mutating route (with its own valid CSRF token); a role not
// allowed gets 403 and leaves no trace in the database's audit log (nothing was done), a
// role allowed gets past the check. The table must name every POST route of routes().
func TestEveryFormChecksTheRoleAtCentral(t *testing.T) {
	allowed := map[string][]fleet.Role{
		"/faults/step":      maintainers,
		"/faults/block":     supervisors,
		"/config":           admins,
		"/evidence/hold":    supervisors,
		"/evidence/request": office,
		"/evidence/approve": {fleet.RoleApprover},
		"/users":            admins,
		"/logout":           everyone,
	}
	src, err := os.ReadFile("console.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"POST (/[^"]*)"`).FindAllStringSubmatch(string(src), -1) {
		if m[1] == "/login" {
			continue
		}
		if _, ok := allowed[m[1]]; !ok {
			t.Errorf("POST %s is not in this test's table", m[1])
		}
	}
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
	form := url.Values{"dock": {"dock-a"}, "fault": {"CAM-1/battery"}, "step": {"cleared"}, "device": {"CAM-1"}, "action": {"block"},
		"reason": {"r"}, "why": {"w"}, "recording": {"r1"}, "request": {"1"}, "name": {"mallory"}, "role": {"admin"}, "team": {"T"}}
	audited := func() int {
		lines, err := db.AuditLog("", 100000)
		if err != nil {
			t.Fatal(err)
		}
		return len(lines)
	}
	for _, role := range fleet.Roles {
		name := "u-" + string(role)
		pw, err := db.AddUser(name, role, "setup")
		if err != nil {
			t.Fatal(err)
		}
		token, sess, err := db.Login(name, pw)
		if err != nil {
			t.Fatal(err)
		}
		for path, roles := range allowed {
			if path == "/logout" {
				continue // everyone may, and it would end the session
			}
			f := url.Values{"csrf": {sess.CSRF}}
			for k, v := range form {
				f[k] = v
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(f.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "console", Value: token})
			before := audited()
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			may := slices.Contains(roles, role)
			switch {
			case !may && resp.StatusCode != http.StatusForbidden:
				t.Errorf("%s POST %s: %d, want 403", role, path, resp.StatusCode)
			case !may && audited() != before:
				t.Errorf("%s POST %s was refused but left %d audit lines", role, path, audited()-before)
			case may && resp.StatusCode == http.StatusForbidden:
				t.Errorf("%s POST %s: 403, the role may", role, path)
			}
		}
	}
}
