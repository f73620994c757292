package fleet

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"dock/uplink/central"
	"dock/uplink/wire"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSchemaVersionedAndNewerRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.sql.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version %d (%v), want %d", v, err, SchemaVersion)
	}
	var sync int
	if err := db.sql.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous %d (%v), want 2 (FULL)", sync, err)
	}
	if _, err := db.sql.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(dir); err == nil {
		db.Close()
		t.Fatal("a database from a newer build was opened")
	}
}

func TestFaultLifecycle(t *testing.T) {
	for _, c := range []struct {
		from, step FaultState
		ok         bool
	}{
		{FaultNew, FaultAcknowledged, true},
		{FaultNew, FaultInRepair, false},
		{FaultNew, FaultReturned, false},
		{FaultNew, FaultCleared, true},
		{FaultAcknowledged, FaultAcknowledged, true},
		{FaultAcknowledged, FaultInRepair, true},
		{FaultInRepair, FaultReturned, true},
		{FaultInRepair, FaultAcknowledged, false},
		{FaultReturned, FaultCleared, true},
		{FaultCleared, FaultCleared, false},
		{FaultCleared, FaultAcknowledged, false},
	} {
		_, err := NextFaultState(c.from, c.step)
		if (err == nil) != c.ok {
			t.Errorf("%s -> %s: err %v, want ok %v", c.from, c.step, err, c.ok)
		}
	}
}

// Ten alerts of one fault are one inbox line; each step is audited and names its dock
// command; the dock's ledger entry for a step confirms it.
func TestFaultInboxDeduplicatesAndDockConfirms(t *testing.T) {
	db := openTest(t)
	raised := time.Now().Add(-time.Hour)
	for i := range 10 {
		a := wire.AlertMsg{ID: "CAM-1/battery-worn", Device: "CAM-1", Code: "battery-worn", State: "alerted", RaisedAt: raised, Attempt: i + 1}
		if err := db.DockAlert("dock-a", a); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := db.Faults()
	if err != nil || len(fs) != 1 || fs[0].Alerts != 10 || fs[0].State != FaultNew {
		t.Fatalf("faults %+v, %v: want one new fault seen 10 times", fs, err)
	}
	if _, err := db.FaultStep("dock-a", "CAM-1/battery-worn", FaultInRepair, "m", "T-1", "Shop"); !errors.Is(err, ErrFaultStep) {
		t.Fatalf("repair before acknowledge: %v", err)
	}
	if _, err := db.FaultStep("dock-a", "CAM-1/battery-worn", FaultAcknowledged, "m", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FaultStep("dock-a", "CAM-1/battery-worn", FaultInRepair, "m", "", ""); !errors.Is(err, ErrFaultStep) {
		t.Fatalf("repair without ticket: %v", err)
	}
	kind, err := db.FaultStep("dock-a", "CAM-1/battery-worn", FaultInRepair, "m", "T-1", "Shop")
	if err != nil || kind != "repair-fault" {
		t.Fatalf("repair: %q %v", kind, err)
	}
	entry := func(seq uint64, detail string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"seq": seq, "time": time.Now().UTC(), "kind": "fault", "detail": detail, "hash": "h"})
		return b
	}
	err = db.DockLedger("dock-a", []json.RawMessage{entry(1, `CAM-1/battery-worn: acknowledge by "m"`), entry(2, `CAM-1/battery-worn: send-for-repair by "m"`), entry(3, "beyond the head")},
		wire.LedgerAckMsg{HeadSeq: 2, HeadHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	fs, _ = db.Faults()
	if len(fs[0].Steps) != 2 || fs[0].Steps[0].Confirmed.IsZero() || fs[0].Steps[1].Confirmed.IsZero() || fs[0].Ticket != "T-1" {
		t.Fatalf("steps %+v: want both confirmed", fs[0].Steps)
	}
	if es, _ := db.LedgerEntries("dock-a", 10); len(es) != 2 {
		t.Fatalf("ledger entries %d: only those that chained (2) are kept", len(es))
	}
	lines, _ := db.AuditLog("fault-", 10)
	if len(lines) != 2 || lines[0].Who != "m" || !strings.Contains(lines[0].Detail, "T-1") {
		t.Fatalf("audit %+v", lines)
	}
	// Cleared, then raised again later: a new inbox line state.
	if _, err := db.FaultStep("dock-a", "CAM-1/battery-worn", FaultCleared, "m", "", ""); err != nil {
		t.Fatal(err)
	}
	_ = db.DockAlert("dock-a", wire.AlertMsg{ID: "CAM-1/battery-worn", Device: "CAM-1", RaisedAt: time.Now(), State: "alerted"})
	if fs, _ = db.Faults(); fs[0].State != FaultNew {
		t.Fatalf("fault raised again after clearing: %s", fs[0].State)
	}
}

func TestUsersPasswordsSessions(t *testing.T) {
	db := openTest(t)
	pw, err := db.AddUser("alice", RoleAdmin, "setup")
	if err != nil || len(pw) < 16 {
		t.Fatalf("add user: %q %v", pw, err)
	}
	if _, err := db.AddUser("alice", RoleAdmin, "setup"); !errors.Is(err, ErrUserExists) {
		t.Fatalf("second alice: %v", err)
	}
	if _, err := db.AddUser("bob", "root", "setup"); err == nil {
		t.Fatal("unknown role taken")
	}
	var h string
	_ = db.sql.QueryRow(`SELECT hash FROM users WHERE name = 'alice'`).Scan(&h)
	if !strings.HasPrefix(h, "argon2id$") || strings.Contains(h, pw) {
		t.Fatalf("stored %q", h)
	}
	if _, _, err := db.Login("alice", pw+"x"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("wrong password: %v", err)
	}
	tok, s, err := db.Login("alice", pw)
	if err != nil || s.Role != RoleAdmin || s.CSRF == "" {
		t.Fatalf("login: %+v %v", s, err)
	}
	if got, err := db.Session(tok); err != nil || got.User != "alice" || got.CSRF != s.CSRF {
		t.Fatalf("session: %+v %v", got, err)
	}
	db.UseClock(func() time.Time { return time.Now().Add(SessionTTL + time.Minute) })
	if _, err := db.Session(tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	lines, _ := db.AuditLog("login", 10)
	if len(lines) != 2 || lines[1].Action != "login-failed" {
		t.Fatalf("audit %+v", lines)
	}
}

// Article 16: footage only after a second person approves; each step audited.
func TestViewNeedsASecondPerson(t *testing.T) {
	db := openTest(t)
	s := central.Stored{Meta: wire.RecordingMeta{ID: "r1", Device: "CAM-1", Officer: "OF-1", Class: "patrol", Start: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)}, Size: 9, SHA256: "ab"}
	if err := db.RecordingFiled("dock-a", s); err != nil {
		t.Fatal(err)
	}
	rs, err := db.Recordings(Search{Officer: "OF-1", Day: "2026-01-02"})
	if err != nil || len(rs) != 1 || rs[0].RetainUntil.Format("2006-01-02") != "2026-07-02" {
		t.Fatalf("search: %+v %v", rs, err)
	}
	rid, err := db.RequestView("dock-a", "r1", "complaint 12", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.View(rid, "carol"); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("view before approval: %v", err)
	}
	if err := db.ApproveView(rid, "carol"); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("self-approval: %v", err)
	}
	if err := db.ApproveView(rid, "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.View(rid, "eve"); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("someone else viewing carol's request: %v", err)
	}
	if r, err := db.View(rid, "carol"); err != nil || r.ID != "r1" {
		t.Fatalf("view: %+v %v", r, err)
	}
	lines, _ := db.AuditLog("view", 10)
	if len(lines) != 3 || lines[2].Action != "view-request" || lines[1].Action != "view-approve" || lines[0].Action != "view" {
		t.Fatalf("audit %+v", lines)
	}
	if cmd, err := db.SetHold("dock-a", "r1", "dispute", "complaint 12", "sup"); err != nil || cmd != "place-hold" {
		t.Fatal(err)
	}
	if r, _ := db.RecordingByID("dock-a", "r1"); r.Hold != "dispute" || !r.RetainUntil.IsZero() {
		t.Fatalf("held: %+v", r)
	}
	if cmd, err := db.SetHold("dock-a", "r1", "", "case closed", "sup"); err != nil || cmd != "release-hold" {
		t.Fatalf("release: %q %v", cmd, err)
	}
}

// A dock's presence and since when come from its retained status: a repeat of the same
// state keeps the time it changed; a dock offline, or silent past the quiet age, stands out.
func TestDockPresenceAndQuiet(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	now := t0
	db.UseClock(func() time.Time { return now })
	status := func(state string) fleet0 {
		t.Helper()
		if err := db.DockStatus("dock-q", wire.StatusMsg{State: state, Version: "v1"}); err != nil {
			t.Fatal(err)
		}
		ds, err := db.Docks()
		if err != nil || len(ds) != 1 {
			t.Fatalf("docks %+v %v", ds, err)
		}
		return fleet0(ds[0])
	}
	d := status("online")
	now = t0.Add(time.Minute)
	d = status("online")
	if !d.Since.Equal(t0) || d.Quiet(now, 2*time.Minute) {
		t.Fatalf("online again: since %s (want %s), quiet %v", d.Since, t0, d.Quiet(now, 2*time.Minute))
	}
	if !d.Quiet(now.Add(3*time.Minute), 2*time.Minute) {
		t.Fatal("a dock silent for 3 minutes does not stand out at a 2-minute quiet age")
	}
	now = t0.Add(2 * time.Minute)
	d = status("offline")
	if d.State != "offline" || !d.Since.Equal(now) || !d.Quiet(now, time.Hour) {
		t.Fatalf("offline: %+v", d)
	}
	now = t0.Add(3 * time.Minute)
	if d = status("bogus"); d.State != "offline" || !d.Since.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("a state that is no state counts as offline, since unchanged: %+v", d)
	}
}

type fleet0 = Dock

// Article 11: a camera not back in a dock within 24 h of its last docking is overdue; one
// docked now, or gone less than 24 h, is not.
func TestOffloadOverdue(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	now := t0
	db.UseClock(func() time.Time { return now })
	bay := func(devices ...string) {
		t.Helper()
		m := wire.TelemetryMsg{Time: now}
		for i, d := range devices {
			m.Slots = append(m.Slots, wire.SlotTelemetry{Slot: i, State: "charging", Device: d})
		}
		if err := db.DockTelemetry("dock-o", m); err != nil {
			t.Fatal(err)
		}
	}
	bay("CAM-A", "CAM-B", "../../bad id")
	now = t0.Add(time.Hour)
	bay("CAM-B") // CAM-A taken out for a shift
	overdue := func(at time.Time) map[string]bool {
		cs, err := db.Cameras()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, c := range cs {
			out[c.Device] = c.OffloadOverdue(at)
		}
		return out
	}
	if got := overdue(t0.Add(23 * time.Hour)); len(got) != 2 || got["CAM-A"] || got["CAM-B"] {
		t.Fatalf("after 23 h: %v (a device id that is no id must not be kept)", got)
	}
	if got := overdue(t0.Add(25 * time.Hour)); !got["CAM-A"] || got["CAM-B"] {
		t.Fatalf("after 25 h: %v, want CAM-A overdue, CAM-B (docked) not", got)
	}
}

// The inbox shows new faults first, then open ones, cleared last.
func TestInboxOrder(t *testing.T) {
	db := openTest(t)
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	db.UseClock(func() time.Time { return now })
	for i, id := range []string{"CAM-1/a", "CAM-2/b", "CAM-3/c", "CAM-4/d"} {
		now = now.Add(time.Minute)
		if err := db.DockAlert("dock-i", wire.AlertMsg{ID: id, RaisedAt: now, State: "alerted", Attempt: i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.FaultStep("dock-i", "CAM-4/d", FaultCleared, "m", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FaultStep("dock-i", "CAM-3/c", FaultAcknowledged, "m", "", ""); err != nil {
		t.Fatal(err)
	}
	fs, err := db.Faults()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.ID)
	}
	if want := []string{"CAM-2/b", "CAM-1/a", "CAM-3/c", "CAM-4/d"}; !slices.Equal(got, want) {
		t.Fatalf("inbox %v, want %v (new newest first, then open, cleared last)", got, want)
	}
}

// A fault's repeated alerts are one inbox line counting them all; only the newest
// keptAlerts messages are kept.
func TestAlertsOfAFaultAreBounded(t *testing.T) {
	db := openTest(t)
	raised := time.Now()
	for i := range keptAlerts + 30 {
		if err := db.DockAlert("dock-b", wire.AlertMsg{ID: "CAM-1/x", RaisedAt: raised, State: "alerted", Attempt: i + 1}); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.DockAlert("dock-b", wire.AlertMsg{ID: "CAM-2/y", RaisedAt: raised, State: "alerted", Attempt: 1})
	var n, first int
	if err := db.sql.QueryRow(`SELECT count(*), min(attempt) FROM alerts WHERE fault = 'CAM-1/x'`).Scan(&n, &first); err != nil || n != keptAlerts || first != 31 {
		t.Fatalf("alerts kept %d from attempt %d (%v), want the newest %d", n, first, err, keptAlerts)
	}
	if fs, _ := db.Faults(); len(fs) != 2 || fs[1].Alerts+fs[0].Alerts != keptAlerts+31 {
		t.Fatalf("faults %+v", fs)
	}
}

// A database made by an older build is brought to the newest schema, keeping its rows.
func TestMigrationFromTheFirstSchema(t *testing.T) {
	dir := t.TempDir()
	all := migrations
	migrations = all[:1]
	db, err := Open(dir)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Audit("old", "before-migration", "", ""); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v, idx int
	_ = db.sql.QueryRow("PRAGMA user_version").Scan(&v)
	_ = db.sql.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'alerts_fault'`).Scan(&idx)
	lines, _ := db.AuditLog("before-migration", 1)
	if v != len(all) || idx != 1 || len(lines) != 1 {
		t.Fatalf("version %d (want %d), index %d, old audit lines %d", v, len(all), idx, len(lines))
	}
}
