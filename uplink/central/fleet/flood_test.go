package fleet

import (
	"fmt"
	"testing"
	"time"

	"dock/uplink/wire"
)

// bounds sets the fleet's per-dock and per-device bounds for one test.
func bounds(t *testing.T, healthSamples, faultsPerDock int) {
	t.Helper()
	h, f := keptHealthSamples, maxFaultsPerDock
	keptHealthSamples, maxFaultsPerDock = healthSamples, faultsPerDock
	t.Cleanup(func() { keptHealthSamples, maxFaultsPerDock = h, f })
}

// A dock sending health samples with ever new times adds no rows past the newest
// keptHealthSamples of a device.
func TestHealthSamplesOfADeviceAreBounded(t *testing.T) {
	bounds(t, 20, 1000)
	db := openTest(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 50 {
		if err := db.DockHealth("dock-h", wire.HealthMsg{Device: "CAM-1", Time: t0.Add(time.Duration(i) * time.Minute), HealthPct: 90}); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.DockHealth("dock-h", wire.HealthMsg{Device: "CAM-2", Time: t0, HealthPct: 90})
	var n int
	var oldest string
	if err := db.sql.QueryRow(`SELECT count(*), min(time) FROM camera_health WHERE device = 'CAM-1'`).Scan(&n, &oldest); err != nil {
		t.Fatal(err)
	}
	if n != 20 || oldest != ts(t0.Add(30*time.Minute)) {
		t.Fatalf("CAM-1 keeps %d samples from %s, want the newest 20 (from %s)", n, oldest, ts(t0.Add(30*time.Minute)))
	}
	if err := db.sql.QueryRow(`SELECT count(*) FROM camera_health WHERE device = 'CAM-2'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("CAM-2 keeps %d samples (%v), want its 1", n, err)
	}
}

// A dock raising ever new fault ids adds no fault past maxFaultsPerDock: the oldest
// cleared one makes room; when none is cleared the new one is refused (the receiver logs
// it) and the open faults stay. Other docks are not touched.
func TestFaultsOfADockAreBounded(t *testing.T) {
	bounds(t, 1000, 10)
	db := openTest(t)
	raised := time.Now()
	alert := func(dock string, i int) error {
		return db.DockAlert(dock, wire.AlertMsg{ID: fmt.Sprintf("CAM-%d/battery", i), Device: fmt.Sprintf("CAM-%d", i), Code: "battery", RaisedAt: raised, State: "alerted", Attempt: 1})
	}
	if err := alert("dock-other", 0); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := alert("dock-f", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.FaultStep("dock-f", "CAM-0/battery", FaultCleared, "maint", "", ""); err != nil {
		t.Fatal(err)
	}
	if err := alert("dock-f", 10); err != nil {
		t.Fatalf("a new fault with a cleared one to make room: %v", err)
	}
	for i := 11; i < 40; i++ {
		if err := alert("dock-f", i); err == nil {
			t.Fatalf("fault %d past the bound taken", i)
		}
	}
	count := func(q string, args ...any) int {
		var n int
		if err := db.sql.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM faults WHERE dock = 'dock-f'`); n != 10 {
		t.Fatalf("dock-f has %d faults, want 10", n)
	}
	if n := count(`SELECT count(*) FROM faults WHERE dock = 'dock-f' AND fault = 'CAM-0/battery'`); n != 0 {
		t.Fatal("the cleared fault stayed, a new one refused")
	}
	if n := count(`SELECT count(*) FROM alerts WHERE dock = 'dock-f' AND fault = 'CAM-0/battery'`); n != 0 {
		t.Fatalf("the pruned fault's %d alerts stayed", n)
	}
	if n := count(`SELECT count(*) FROM faults WHERE dock = 'dock-other'`); n != 1 {
		t.Fatalf("dock-other has %d faults, want 1", n)
	}
	// A fault already known is still updated when the dock is at its bound.
	if err := alert("dock-f", 5); err != nil {
		t.Fatalf("a repeat of a known fault at the bound: %v", err)
	}
}

// A dock naming ever new cameras (in its bays or in health samples) adds no camera past
// maxCamerasPerDock; the cameras it has keep being updated, and other docks' are untouched.
func TestCamerasOfADockAreBounded(t *testing.T) {
	h, c := keptHealthSamples, maxCamerasPerDock
	keptHealthSamples, maxCamerasPerDock = 1000, 5
	t.Cleanup(func() { keptHealthSamples, maxCamerasPerDock = h, c })
	db := openTest(t)
	now := time.Now()
	slots := func(from, n int) []wire.SlotTelemetry {
		var out []wire.SlotTelemetry
		for i := range n {
			out = append(out, wire.SlotTelemetry{Slot: i, State: "charging", Device: fmt.Sprintf("CAM-%d", from+i), Battery: &wire.Battery{HealthPct: 90}})
		}
		return out
	}
	if err := db.DockTelemetry("dock-other", wire.TelemetryMsg{Time: now, Slots: slots(900, 1)}); err != nil {
		t.Fatal(err)
	}
	for round := range 4 {
		if err := db.DockTelemetry("dock-c", wire.TelemetryMsg{Time: now, Slots: slots(round*3, 3)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		_ = db.DockHealth("dock-c", wire.HealthMsg{Device: fmt.Sprintf("CAM-H%d", i), Time: now, HealthPct: 80})
	}
	var n int
	if err := db.sql.QueryRow(`SELECT count(*) FROM cameras WHERE device != 'CAM-900'`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("dock-c made %d cameras (%v), want 5", n, err)
	}
	if err := db.sql.QueryRow(`SELECT count(*) FROM camera_health WHERE device LIKE 'CAM-H%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d health samples of cameras past the bound (%v)", n, err)
	}
	if err := db.DockHealth("dock-c", wire.HealthMsg{Device: "CAM-0", Time: now, HealthPct: 70}); err != nil {
		t.Fatalf("a sample of a camera the dock has: %v", err)
	}
	var pct int
	if err := db.sql.QueryRow(`SELECT health_pct FROM cameras WHERE device = 'CAM-0'`).Scan(&pct); err != nil || pct != 70 {
		t.Fatalf("CAM-0 health %d (%v), want 70", pct, err)
	}
	if err := db.DockTelemetry("dock-other", wire.TelemetryMsg{Time: now, Slots: slots(901, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := db.sql.QueryRow(`SELECT count(*) FROM cameras WHERE device IN ('CAM-900', 'CAM-901')`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("dock-other's cameras: %d (%v), want 2", n, err)
	}
}
