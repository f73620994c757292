package browsertest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dock/agent/simrun"
	"dock/board/sim"
	"dock/uplink/central"
	"dock/uplink/central/console/consoletest"
	"dock/uplink/central/fleet"
	"dock/uplink/central/notify"
	"dock/uplink/central/notify/notifytest"
)

// within fails t unless cond holds within timeout.
func within(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := simrun.WaitFor(ctx, what, cond); err != nil {
		t.Fatal(err)
	}
}

// maintenanceHook is the maintenance team's webhook receiver: it keeps the messages
// whose signature holds under secret.
type maintenanceHook struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []notify.Message
	at     []time.Time
}

func newMaintenanceHook(t *testing.T, secret string) *maintenanceHook {
	h := &maintenanceHook{secret: secret}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(r.Header.Get("X-Dock-Timestamp") + "." + string(body)))
		if r.Header.Get("X-Dock-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("webhook signature %q does not hold", r.Header.Get("X-Dock-Signature"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var msg notify.Message
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.mu.Lock()
		h.got, h.at = append(h.got, msg), append(h.at, time.Now())
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *maintenanceHook) messages() ([]notify.Message, []time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]notify.Message(nil), h.got...), append([]time.Time(nil), h.at...)
}

// notifier runs the maintenance team's notifications (webhook and e-mail) until the test
// ends: the team Team-North-3 hears of the docks whose running config names it (the fleet's
// DockTeam, once db holds the fleet), as central -notifications routes them.
func notifier(t *testing.T, hook *maintenanceHook, mp *notifytest.Mailpit, db *atomic.Pointer[fleet.DB]) *notify.Notifier {
	cfg := notify.Config{
		Gather:     notify.Duration(time.Second),
		ConsoleURL: "http://console.invalid/",
		SMTP:       &notify.SMTP{Addr: mp.SMTPAddr, CAFile: mp.CAFile, Username: mp.User, Password: mp.Password},
		Teams: []notify.Team{{Name: "Team-North-3",
			Webhook: &notify.Webhook{URL: hook.srv.URL + "/maintenance", Secret: []byte(hook.secret)},
			Email:   &notify.Email{From: "central@dock.test", To: []string{"maintenance@dock.test"}}}},
	}
	teamOf := func(dock string) (string, error) {
		if db.Load() == nil {
			return "", errors.New("no fleet yet")
		}
		return db.Load().DockTeam(dock)
	}
	n, err := notify.New(notify.Options{Config: cfg, Store: notify.NewMemStore(), TeamOf: teamOf, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

// A maintenance user at the console, step by step: signs in; a simulated dock (the real
// agent, over a real mosquitto) raises a fault for a worn battery, which is in the inbox
// within 5 s while the signed webhook and the e-mail reach the team; acknowledges it and
// sees the dock confirm; sends it for repair with a ticket and a shop, marks it returned,
// clears it, each confirmed by the dock; and is refused the admin pages (403).
func TestMaintenanceInTheBrowser(t *testing.T) {
	browser := startBrowser(t)
	mp := notifytest.StartMailpit(t)
	hook := newMaintenanceHook(t, "north-maintenance-secret")
	var db atomic.Pointer[fleet.DB]
	n := notifier(t, hook, mp, &db)
	e := consoletest.Start(t, consoletest.Options{Slots: 2, Observe: func(fl central.Observer) central.Observer { return n.Observer(fl) }})
	db.Store(e.DB)
	maint := newPerson(t, browser, e.URL, "maint")
	password := e.AddUser(t, "maint", fleet.RoleMaintenance)

	maint.open("/login")
	maint.screenshot("login")
	maint.login("maint", password)
	if who := maint.text("header .who"); !strings.Contains(who, "maint (maintenance)") {
		t.Fatalf("signed in, the header says %q", who)
	}
	dock := e.Docks[0]
	worn, _, err := dock.NewCamera("CAM-W", "OF-W", 1, 50_000, 3, nil, func(s *sim.CameraState) { s.FullMAh = 1500 })
	if err != nil {
		t.Fatal(err)
	}
	good, _, err := dock.NewCamera("CAM-G", "OF-G", 2, 50_000, 4, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := dock.Dock.Dock(1, good); err != nil {
		t.Fatal(err)
	}
	if err := dock.Dock.Dock(0, worn); err != nil {
		t.Fatal(err)
	}
	within(t, 15*time.Second, "the dock raising battery-worn", func() bool {
		for _, f := range dock.Agent.Faults() {
			if f.ID == "CAM-W/battery-worn" {
				return true
			}
		}
		return false
	})
	raised := time.Now()
	row := `tr[data-fault="dock-1/CAM-W/battery-worn"]`
	took := maint.waitJS("/faults", fmt.Sprintf(`document.querySelector(%q) !== null`, row), 5*time.Second)
	t.Logf("the fault was in maint's inbox %v after the dock raised it", took.Round(10*time.Millisecond))
	maint.screenshot("faults-new")

	mails := mp.WaitMessages(t, 1, 15*time.Second)
	within(t, 15*time.Second, "the webhook", func() bool { m, _ := hook.messages(); return len(m) > 0 })
	msgs, at := hook.messages()
	t.Logf("webhook %v and e-mail after the dock raised the fault", at[0].Sub(raised).Round(10*time.Millisecond))
	if len(mails) != 1 || mails[0].Subject != "dock dock-1: fault battery-worn on CAM-W" || !strings.Contains(mails[0].Text, "http://console.invalid/faults?dock=dock-1") {
		t.Fatalf("e-mail: %+v", mails)
	}
	if len(msgs) != 1 || msgs[0].Dock != "dock-1" || len(msgs[0].Faults) != 1 || msgs[0].Faults[0].ID != "CAM-W/battery-worn" {
		t.Fatalf("webhook: %+v", msgs)
	}

	confirmed := func(step string) string {
		return fmt.Sprintf(`document.querySelector(%q) !== null`, row+` .step[data-step="`+step+`"] .confirmed`)
	}
	maint.click("acknowledge", row+" button.ack")
	maint.waitJS("/faults", confirmed("acknowledged"), 15*time.Second)
	maint.screenshot("faults-acknowledged")
	maint.type_(row+" input.ticket", "RMA-2291")
	maint.type_(row+" input.shop", "Acme Repairs")
	maint.click("sent for repair", row+" button.repair")
	maint.waitJS("/faults", confirmed("sent-for-repair"), 15*time.Second)
	if got := maint.text(row); !strings.Contains(got, "ticket RMA-2291, shop Acme Repairs") {
		t.Fatalf("the fault's row says %q", got)
	}
	// The camera goes to the shop and comes back with a new battery.
	if _, err := dock.Dock.Undock(0); err != nil {
		t.Fatal(err)
	}
	if err := worn.Update(func(s *sim.CameraState) { s.FullMAh = 3000 }); err != nil {
		t.Fatal(err)
	}
	maint.click("returned", row+" button.returned")
	within(t, 15*time.Second, "the dock reporting bay 0 empty", func() bool {
		ds, _ := e.DB.Docks()
		return len(ds) == 1 && len(ds[0].Bays) == 2 && ds[0].Bays[0].State == "empty"
	})
	if err := dock.Dock.Dock(0, worn); err != nil {
		t.Fatal(err)
	}
	maint.open("/faults")
	maint.click("clear", row+" button.clear")
	maint.waitJS("/faults", confirmed("cleared"), 15*time.Second)
	if state := maint.text(row + " .state"); state != "cleared" {
		t.Fatalf("state %q after clearing", state)
	}
	maint.screenshot("faults-cleared")
	if f := dock.Agent.Faults(); len(f) != 1 || f[0].State != "cleared" {
		t.Fatalf("the dock's fault: %+v", f)
	}
	maint.open("/")
	maint.screenshot("fleet")
	maint.open("/devices")
	maint.screenshot("devices")
	for _, path := range []string{"/config", "/users", "/audit"} {
		if s := maint.statusOf(path); s != http.StatusForbidden {
			t.Errorf("maint opening %s: %d, want 403", path, s)
		}
	}
	maint.statusOf("/users")
	if body := maint.text("main"); !strings.Contains(body, "Forbidden") {
		t.Errorf("maint's /users says %q", body)
	}
	maint.screenshot("forbidden")
	// The dock repeated its alert until acknowledged: still one message each.
	if m, _ := hook.messages(); len(m) != 1 || len(mp.Messages(t)) != 1 {
		t.Fatalf("%d webhook messages and %d e-mails for one fault", len(m), len(mp.Messages(t)))
	}
}

// The central office at the console, step by step: an admin pushes a config to two docks
// canary first and sees both applied; an invalid one is refused before signing; a
// supervisor asks to view a recording, an approver approves it, the supervisor views the
// footage (the bytes central filed), and the admin finds all three in the audit log.
func TestOfficeInTheBrowser(t *testing.T) {
	browser := startBrowser(t)
	e := consoletest.Start(t, consoletest.Options{Docks: 2, Slots: 1})
	admin := newPerson(t, browser, e.URL, "admin")
	admin.login(e.AdminUser, e.AdminPassword)

	// An invalid config: refused with the dock's own rule, nothing signed.
	before, _ := e.DB.NextConfigVersion()
	admin.open("/config")
	admin.type_("#alert_every", "1ms")
	admin.click("roll out an invalid config", "#rollout")
	if body := admin.text("main"); !strings.Contains(body, "refused before signing") || !strings.Contains(body, "alert_every") {
		t.Fatalf("the invalid config's page says:\n%s", body)
	}
	admin.screenshot("config-refused")
	if after, _ := e.DB.NextConfigVersion(); after != before {
		t.Fatalf("an invalid config took version %d", before)
	}

	// A good one, previewed, then to both docks, one canary first.
	admin.open("/config")
	admin.type_("#team", "Team-2")
	admin.type_("#officers", "CAM-1=OF-1")
	admin.type_("#alert_every", "30s")
	admin.type_("#telemetry_every", "1s")
	admin.do("target all docks", chromedp.Click(chromedp.CSS(`input[name="target"][value="all"]`)))
	admin.type_("#canary", "1")
	admin.click("preview", "#preview")
	if diff := admin.text("#diff"); !strings.Contains(diff, `"CAM-1": "OF-1"`) || !strings.Contains(diff, `"team": "Team-North-3"`) {
		t.Fatalf("the diff says:\n%s", diff)
	}
	admin.screenshot("config-diff")
	admin.click("sign and roll out", "#rollout")
	// Both docks report the new version applied, in the per-dock table.
	admin.waitJS("/config", fmt.Sprintf(`["dock-1", "dock-2"].every(d => {
		const r = document.querySelector('tr[data-dock="' + d + '"]');
		return r && r.cells[1].textContent === "%[1]d" && r.cells[2].textContent === "%[1]d" && r.querySelector("td.status").textContent === "applied";
	})`, before), 30*time.Second)
	within(t, 10*time.Second, "the rollout done", func() bool { rs, _ := e.DB.Rollouts(1); return len(rs) == 1 && rs[0].State == fleet.RolloutDone })
	admin.waitJS("/config", `document.querySelector("#rollouts tr[data-rollout] td.state").textContent.startsWith("done")`, 5*time.Second)
	admin.screenshot("config-applied")
	rs, _ := e.DB.Rollouts(1)
	if len(rs) != 1 || rs[0].State != fleet.RolloutDone || len(rs[0].Docks) != 2 || rs[0].Docks[0].Wave != 0 || rs[0].Docks[1].Wave != 1 || !rs[0].Docks[0].Pushed.Before(rs[0].Docks[1].Pushed) {
		t.Fatalf("rollout %+v: want done, the canary pushed before the rest", rs)
	}
	for _, h := range e.Docks {
		if s := h.Agent.Settings(); s.Version != before || s.Team != "Team-2" {
			t.Fatalf("a dock runs %d %q, want %d Team-2", s.Version, s.Team, before)
		}
	}

	// Article 16: asked by one, approved by a second person, then viewed.
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
	sup := newPerson(t, browser, e.URL, "sup")
	sup.login("sup", e.AddUser(t, "sup", fleet.RoleSupervisor))
	appr := newPerson(t, browser, e.URL, "appr")
	appr.login("appr", e.AddUser(t, "appr", fleet.RoleApprover))
	rec := fmt.Sprintf(`tr[data-recording=%q]`, id)
	sup.waitJS("/evidence?officer=OF-E", fmt.Sprintf(`document.querySelector(%q) !== null`, rec), 10*time.Second)
	sup.type_(rec+" input.reason", "complaint 77")
	sup.click("request to view", rec+" button.request")
	sup.screenshot("evidence-requested")
	if n := eval[int](sup, `document.querySelectorAll("a.view").length`); n != 0 {
		t.Fatalf("a view link before approval")
	}
	appr.open("/evidence")
	appr.click("approve", `tr[data-request="1"] button.approve`)
	sup.open("/evidence")
	sup.screenshot("evidence-approved")
	// The footage, fetched by the supervisor's browser through the view link.
	sum := eval[string](sup, `fetch(document.querySelector("a.view").href).then(r => r.ok ? r.arrayBuffer() : Promise.reject(r.status)).then(b => crypto.subtle.digest("SHA-256", b)).then(d => Array.from(new Uint8Array(d)).map(x => x.toString(16).padStart(2, "0")).join(""))`, chromedp.EvalAwaitPromise)
	if sum != want[id] {
		t.Fatalf("the footage viewed hashes to %s, the camera's recording to %s", sum, want[id])
	}
	admin.open("/audit")
	admin.screenshot("audit")

	for _, c := range []struct{ action, who string }{{"view-request", "sup"}, {"view-approve", "appr"}, {"view", "sup"}} {
		got := eval[string](admin, fmt.Sprintf(`Array.from(document.querySelectorAll('tr[data-action=%q]')).map(r => r.cells[1].textContent + " on " + r.cells[3].textContent).join("; ")`, c.action))
		if got != c.who+" on dock-1/"+id {
			t.Errorf("audit %s: %q, want by %s on dock-1/%s", c.action, got, c.who, id)
		}
	}
	admin.open("/ledgers")
	admin.screenshot("ledgers")
	admin.waitFor("/ledgers/dock-1", id, 15*time.Second) // the dock's exported entries name the recording
	admin.screenshot("ledger-entries")
	admin.open("/users")
	admin.screenshot("users")
}
