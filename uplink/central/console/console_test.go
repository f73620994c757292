package console_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"dock/agent/simrun"
	"dock/board/sim"
	"dock/uplink/central/console/consoletest"
	"dock/uplink/central/fleet"
)

// wait fails t unless cond holds within 30 s.
func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := simrun.WaitFor(ctx, what, cond); err != nil {
		t.Fatal(err)
	}
}

// Who may reach what: a maintenance user gets 403 from the admin pages, nobody signed in
// gets the sign-in page, a form without the session's CSRF token is refused, and the
// session cookie is HttpOnly and SameSite=Strict.
func TestRolesSessionsAndCSRF(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	resp, err := http.Get(e.URL + "/config")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("signed out, /config led to %s, want /login", resp.Request.URL)
	}
	resp, err = http.PostForm(e.URL+"/login", url.Values{"user": {e.AdminUser}, "password": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	// A guesser at one name is refused (429) once it failed fleet.MaxFailedLogins times.
	for i := range fleet.MaxFailedLogins + 1 {
		resp, err := http.PostForm(e.URL+"/login", url.Values{"user": {"nobody"}, "password": {"guess"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: http.StatusTooManyRequests, false: http.StatusUnauthorized}[i == fleet.MaxFailedLogins]; resp.StatusCode != want {
			t.Fatalf("guess %d at nobody's password: %d, want %d", i, resp.StatusCode, want)
		}
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.PostForm(e.URL+"/login", url.Values{"user": {e.AdminUser}, "password": {e.AdminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}

	m := e.Login(t, "maint", e.AddUser(t, "maint", fleet.RoleMaintenance))
	admin := e.Login(t, e.AdminUser, e.AdminPassword)
	for _, c := range []struct {
		who    *consoletest.Client
		name   string
		path   string
		status int
	}{
		{m, "maintenance", "/", 200},
		{m, "maintenance", "/faults", 200},
		{m, "maintenance", "/devices", 200},
		{m, "maintenance", "/config", 403},
		{m, "maintenance", "/users", 403},
		{m, "maintenance", "/audit", 403},
		{m, "maintenance", "/evidence", 403},
		{admin, "admin", "/config", 200},
		{admin, "admin", "/users", 200},
		{admin, "admin", "/audit", 200},
		{admin, "admin", "/evidence", 200},
	} {
		if code, _ := c.who.Get(c.path); code != c.status {
			t.Errorf("%s GET %s: %d, want %d", c.name, c.path, code, c.status)
		}
	}
	if code, _ := m.Post("/users", url.Values{"name": {"mallory"}, "role": {"admin"}}); code != 403 {
		t.Errorf("maintenance creating an admin: %d, want 403", code)
	}
	if code, _ := admin.Post("/users", url.Values{"name": {"eve"}, "role": {"admin"}, "csrf": {"forged"}}); code != 403 {
		t.Errorf("a form with a forged CSRF token: %d, want 403", code)
	}
	code, body := admin.Post("/users", url.Values{"name": {"sup"}, "role": {"supervisor"}})
	if code != 200 || !strings.Contains(body, "One-time password") {
		t.Fatalf("admin creating a supervisor: %d %s", code, body)
	}
	lines, _ := e.DB.AuditLog("", 100)
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l.Who+" "+l.Action] = true
	}
	for _, want := range []string{"admin add-user", "admin csrf-refused", "admin login", "maint login", "admin login-failed"} {
		if !seen[want] {
			t.Errorf("audit log lacks %q: %v", want, seen)
		}
	}
}

// A simulated dock raises a fault for a worn battery: it is in the inbox within 5 s;
// maintenance acknowledges it, sends it for repair with a ticket and a shop, marks it
// returned and clears it; each step that goes to the dock is confirmed by the dock.
func TestFaultInboxWithTheDock(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{Slots: 2})
	m := e.Login(t, "maint", e.AddUser(t, "maint", fleet.RoleMaintenance))
	worn, _, err := e.Docks[0].NewCamera("CAM-W", "OF-W", 1, 50_000, 3, nil, func(s *sim.CameraState) { s.FullMAh = 1500 })
	if err != nil {
		t.Fatal(err)
	}
	docked := time.Now()
	if err := e.Docks[0].Dock.Dock(0, worn); err != nil {
		t.Fatal(err)
	}
	m.WaitPage("/faults", "CAM-W/battery-worn", 5*time.Second)
	t.Logf("fault in the inbox %s after docking", time.Since(docked).Round(time.Millisecond))
	step := func(step string, form url.Values, want string) {
		t.Helper()
		if form == nil {
			form = url.Values{}
		}
		form.Set("dock", "dock-1")
		form.Set("fault", "CAM-W/battery-worn")
		form.Set("step", step)
		code, body := m.Post("/faults/step", form)
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("%s: %d, want %q in:\n%s", step, code, want, body)
		}
	}
	step("sent-for-repair", url.Values{"ticket": {"T-1"}, "shop": {"Shop"}}, "not allowed while new")
	step("acknowledged", nil, "sent to dock-1 as ack-fault")
	m.WaitPage("/faults", `data-step="acknowledged">acknowledged by maint`, 5*time.Second)
	m.WaitPage("/faults", "dock confirmed", 15*time.Second)
	step("sent-for-repair", nil, "needs a ticket and a shop")
	step("sent-for-repair", url.Values{"ticket": {"RMA-2291"}, "shop": {"Acme Repairs"}}, "sent to dock-1 as repair-fault")
	// The camera goes to the shop and comes back with a new battery, docked again.
	if _, err := e.Docks[0].Dock.Undock(0); err != nil {
		t.Fatal(err)
	}
	if err := worn.Update(func(s *sim.CameraState) { s.FullMAh = 3000 }); err != nil {
		t.Fatal(err)
	}
	step("returned", nil, "returned recorded")
	wait(t, "the dock reporting bay 0 empty", func() bool {
		ds, _ := e.DB.Docks()
		return len(ds) == 1 && len(ds[0].Bays) == 2 && ds[0].Bays[0].State == "empty"
	})
	if err := e.Docks[0].Dock.Dock(0, worn); err != nil {
		t.Fatal(err)
	}
	step("cleared", nil, "sent to dock-1 as clear-fault")
	wait(t, "the dock confirming every step it was sent", func() bool {
		fs, _ := e.DB.Faults()
		if len(fs) != 1 || fs[0].State != fleet.FaultCleared || len(fs[0].Steps) != 4 {
			return false
		}
		for _, s := range fs[0].Steps {
			if s.Command != "" && s.Confirmed.IsZero() {
				return false
			}
		}
		return true
	})
	devices := m.WaitPage("/devices", "<polyline", 10*time.Second)
	if !strings.Contains(devices, `data-device="CAM-W"`) || !strings.Contains(devices, "compliant") {
		t.Fatalf("devices page: no state-of-health plot or article 11 column for CAM-W:\n%s", devices)
	}
	if f := e.Docks[0].Agent.Faults(); len(f) != 1 || f[0].State != "cleared" {
		t.Fatalf("the dock's fault: %+v", f)
	}
}

// Config: a form that breaks the dock's rules is refused before anything is signed; a
// good one goes to two docks canary first, and both apply it.
func TestConfigCanaryRolloutToTwoDocks(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{Docks: 2, Slots: 1})
	admin := e.Login(t, e.AdminUser, e.AdminPassword)
	before, _ := e.DB.NextConfigVersion()
	code, body := admin.Post("/config", url.Values{"team": {"Team-2"}, "alert_every": {"1ms"}, "target": {"all"}, "canary": {"1"}, "action": {"rollout"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "refused before signing") || !strings.Contains(body, "alert_every") {
		t.Fatalf("invalid config: %d\n%s", code, body)
	}
	if after, _ := e.DB.NextConfigVersion(); after != before {
		t.Fatalf("an invalid config took version %d", before)
	}
	code, body = admin.Post("/config", url.Values{"team": {"Team-2"}, "officers": {"CAM-1=OF-1"}, "telemetry_every": {"1s"}, "target": {"all"}, "canary": {"1"}, "action": {"preview"}})
	if code != 200 || !strings.Contains(body, `<span class="add">&#43;     &#34;CAM-1&#34;: &#34;OF-1&#34;</span>`) ||
		!strings.Contains(body, `<span class="del">-   &#34;team&#34;: &#34;Team-North-3&#34;,</span>`) {
		t.Fatalf("preview: %d\n%s", code, body)
	}
	code, body = admin.Post("/config", url.Values{"team": {"Team-2"}, "officers": {"CAM-1=OF-1"}, "telemetry_every": {"1s"}, "target": {"all"}, "canary": {"1"}, "action": {"rollout"}})
	if code != 200 || !strings.Contains(body, "canary dock(s) first") {
		t.Fatalf("rollout: %d\n%s", code, body)
	}
	wait(t, "both docks applied the new version, canary first", func() bool {
		rs, _ := e.DB.Rollouts(1)
		return len(rs) == 1 && rs[0].State == fleet.RolloutDone
	})
	rs, _ := e.DB.Rollouts(1)
	canary, rest := rs[0].Docks[0], rs[0].Docks[1]
	if canary.Wave != 0 || rest.Wave != 1 || !canary.Pushed.Before(rest.Pushed) {
		t.Fatalf("rollout docks %+v: the canary was not pushed first", rs[0].Docks)
	}
	for _, h := range e.Docks {
		if s := h.Agent.Settings(); s.Version != before || s.Team != "Team-2" {
			t.Fatalf("a dock runs %d %q, want %d Team-2", s.Version, s.Team, before)
		}
	}
	admin.WaitPage("/config", `<td class="status">applied</td>`, 5*time.Second)
}

// Article 16: a supervisor asks to view a recording, an approver approves, the supervisor
// views it (the footage central filed, byte for byte); all three are in the audit log.
func TestViewFootageNeedsASecondPerson(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{Slots: 1})
	cam, want, err := e.Docks[0].NewCamera("CAM-E", "OF-E", 1, 40_000, 4, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Docks[0].Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := simrun.WaitCentral(ctx, e.Store, want); err != nil {
		t.Fatal(err)
	}
	var id string
	for k := range want {
		id = k
	}
	sup := e.Login(t, "sup", e.AddUser(t, "sup", fleet.RoleSupervisor))
	appr := e.Login(t, "appr", e.AddUser(t, "appr", fleet.RoleApprover))
	sup.WaitPage("/evidence?officer=OF-E", id, 5*time.Second)
	if code, body := sup.Post("/evidence/request", url.Values{"dock": {"dock-1"}, "recording": {id}, "reason": {"complaint 77"}}); code != 200 || !strings.Contains(body, "request 1 recorded") {
		t.Fatalf("request: %d %s", code, body)
	}
	if code, _ := sup.Get("/evidence/view/1"); code != http.StatusForbidden {
		t.Fatalf("view before approval: %d, want 403", code)
	}
	if code, _ := sup.Post("/evidence/approve", url.Values{"request": {"1"}}); code != http.StatusForbidden {
		t.Fatalf("a supervisor approving: %d, want 403", code)
	}
	if code, body := appr.Post("/evidence/approve", url.Values{"request": {"1"}}); code != 200 || !strings.Contains(body, "request 1 approved") {
		t.Fatalf("approve: %d %s", code, body)
	}
	if code, _ := appr.Get("/evidence/view/1"); code != http.StatusForbidden {
		t.Fatalf("the approver viewing another's request: %d, want 403", code)
	}
	code, footage := sup.Get("/evidence/view/1")
	s, _, _ := e.Store.Filed("dock-1", id)
	filed, err := os.ReadFile(s.Path)
	if err != nil || code != 200 || footage != string(filed) {
		t.Fatalf("view: %d, %d bytes, want the %d filed (%v)", code, len(footage), len(filed), err)
	}
	// A supervisor places a hold and releases it: who, why and when on the page, audited,
	// the release sent to the dock as its signed release-hold.
	if code, body := sup.Post("/evidence/hold", url.Values{"dock": {"dock-1"}, "recording": {id}, "reason": {"dispute"}, "why": {"complaint 77"}, "action": {"place"}}); code != 200 || !strings.Contains(body, "hold placed at central (dispute) and sent to dock-1 as place-hold") {
		t.Fatalf("place hold: %d %s", code, body)
	}
	if code, body := sup.Post("/evidence/hold", url.Values{"dock": {"dock-1"}, "recording": {id}, "why": {"case closed"}, "action": {"release"}}); code != 200 || !strings.Contains(body, "sent to dock-1 as release-hold") ||
		!strings.Contains(body, "dispute: complaint 77") || !strings.Contains(body, ": case closed") {
		t.Fatalf("release hold: %d %s", code, body)
	}
	if lines, _ := e.DB.AuditLog("", 20); !slices.ContainsFunc(lines, func(l fleet.AuditLine) bool { return l.Who == "sup" && l.Action == "release-hold" }) {
		t.Fatalf("release not audited: %+v", lines)
	}
	lines, _ := e.DB.AuditLog("view", 10)
	if len(lines) != 3 || lines[0].Who != "sup" || lines[1].Who != "appr" || lines[2].Action != "view-request" {
		t.Fatalf("audit: %+v", lines)
	}
}
