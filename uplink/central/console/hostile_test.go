package console

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"dock/uplink/central"
	"dock/uplink/central/fleet"
	"dock/uplink/wire"
)

// A dock is hostile: whatever text it reports (version, bay state, officer, fault code and
// detail, config rejection reason, ledger entries, recording names, a break) reaches
// every page escaped, never as markup, script or an attribute of its own.
func TestDockTextIsShownEscaped(t *testing.T) {
	db, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const x = `"'><script>alert(1)</script><img src=x onerror=alert(2)>`
	const dock = "dock-x"
	now := time.Now()
	for _, err := range []error{
		db.DockStatus(dock, wire.StatusMsg{State: "online", Version: x, Time: now}),
		db.DockTelemetry(dock, wire.TelemetryMsg{Time: now, Slots: []wire.SlotTelemetry{{Slot: 0, State: x, Device: "CAM-1", Officer: x, Faults: []string{x}}}}),
		db.DockAlert(dock, wire.AlertMsg{ID: "CAM-1/" + x, Device: "CAM-1", Code: x, Detail: x, State: x, RaisedAt: now, Attempt: 1}),
		db.DockReported(dock, wire.ReportedMsg{Version: 1, Status: x, Reason: x}),
		db.DockHealth(dock, wire.HealthMsg{Device: "CAM-1", Time: now, HealthPct: 80}),
		db.DockLedger(dock, []json.RawMessage{json.RawMessage(`{"seq":1,"kind":` + quote(x) + `,"device":` + quote(x) + `,"recording":` + quote(x) + `,"detail":` + quote(x) + `,"hash":` + quote(x) + `}`)},
			wire.LedgerAckMsg{HeadSeq: 1, HeadHash: x, Error: x}),
		db.RecordingFiled(dock, central.Stored{Meta: wire.RecordingMeta{ID: "r1", Name: x, Device: "CAM-1", Officer: x, Team: x, Class: x, Hold: x, Start: now}, SHA256: x}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RequestView(dock, "r1", x, "admin"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, Options{DB: db, Docks: &recordingDispatcher{}, Log: discardLog(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	pw, err := db.AddUser("admin", fleet.RoleAdmin, "setup")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := db.Login("admin", pw)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/devices", "/faults", "/config", "/evidence", "/ledgers", "/ledgers/" + dock, "/audit"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: "console", Value: token})
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if path != "/devices" && !strings.Contains(string(body), "&lt;script&gt;alert(1)") {
			t.Errorf("GET %s does not show the dock's text: the test does not reach it", path)
		}
		for _, raw := range []string{"<script>alert(1)", "<img src=x", `"'>`} {
			if strings.Contains(string(body), raw) {
				t.Errorf("GET %s shows the dock's %q unescaped", path, raw)
			}
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
