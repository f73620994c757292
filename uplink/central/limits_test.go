package central

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dock/uplink/wire"
)

// testLimits are the receiver's default limits at the reference chunk size.
var testLimits = Limits{}.withDefaults(1 << 20)

// A chunk longer than the chunk size central grants is refused with an error ack, and
// nothing of it is stored; chunks of the granted size go on as before.
func TestChunkLongerThanTheGrantIsRefused(t *testing.T) {
	const chunk = 64 << 10
	lim := Limits{}.withDefaults(chunk)
	data, sum := footage(3*chunk, 61)
	st := FileStore{Dir: t.TempDir()}
	meta := wire.RecordingMeta{ID: "CAM-6_VID_0061.mp4", Device: "CAM-6"}
	if a, err := answerBegin(st, lim, "dock-1", wire.BeginMsg{Transfer: "t1", Recording: meta, Size: int64(len(data)), SHA256: sum}); err != nil || a.ack == nil || a.ack.Error != "" {
		t.Fatalf("begin: %+v %v", a.ack, err)
	}
	for _, n := range []int{chunk + 1, 2 * chunk, 3 * chunk} {
		a := answerChunk(st, lim, "dock-1", wire.Chunk{Recording: meta.ID, Offset: 0, Data: data[:n]})
		if a.ack == nil || a.ack.Error == "" || a.ack.Offset != 0 {
			t.Fatalf("chunk of %d bytes under a grant of %d answered %+v, want an error ack", n, chunk, a.ack)
		}
		if fi, err := os.Stat(st.partPath("dock-1", meta.ID)); err != nil || fi.Size() != 0 {
			t.Fatalf("after a refused chunk of %d bytes the part holds %v bytes (%v), want none", n, fi.Size(), err)
		}
		if up, _, _ := st.Held("dock-1", meta.ID); up.Held != 0 {
			t.Fatalf("after a refused chunk central holds %d bytes", up.Held)
		}
	}
	for off := 0; off < len(data); off += chunk {
		if a := answerChunk(st, lim, "dock-1", wire.Chunk{Recording: meta.ID, Offset: int64(off), Data: data[off : off+chunk]}); a.ack.Error != "" {
			t.Fatalf("chunk at %d of the granted size answered %+v", off, a.ack)
		}
	}
	if e, _, err := answerEnd(st, "dock-1", wire.EndMsg{Recording: meta.ID, Size: int64(len(data)), SHA256: sum}); err != nil || e.receipt == nil || e.receipt.SHA256 != sum {
		t.Fatalf("end: %+v %+v %v", e.ack, e.receipt, err)
	}
	// The office cannot grant more than central takes.
	r := newReceiver(Options{ChunkSize: chunk}, quiet())
	if err := r.Grant(t.Context(), "dock-1", wire.GrantMsg{ID: "g", ChunkSize: 2 * chunk, Window: 4}); err == nil {
		t.Fatal("a grant of chunks longer than MaxChunk accepted")
	}
	// Nor can the receiver's own grants.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := Start(ctx, Options{ChunkSize: 2 * chunk, Limits: Limits{MaxChunk: chunk}, Store: st}, quiet()); err == nil || !strings.Contains(err.Error(), "MaxChunk") {
		t.Fatalf("a receiver granting chunks past its own MaxChunk started: %v", err)
	}
}

// A dock's uploads in progress are bounded in number and in bytes announced: a begin of
// another recording past either is answered with an error the dock retries later, while a
// begin of one in progress (a resume) always goes through, and other docks are not held.
func TestUploadsInProgressAreCappedPerDock(t *testing.T) {
	lim := testLimits
	lim.MaxUploadsPerDock, lim.MaxIncomingBytesPerDock = 3, 10<<10
	st := FileStore{Dir: t.TempDir()}
	type rec struct {
		meta wire.RecordingMeta
		data []byte
		sum  string
	}
	mk := func(n int, size int) rec {
		data, sum := footage(size, uint64(n))
		return rec{wire.RecordingMeta{ID: fmt.Sprintf("CAM-7_VID_%04d.mp4", n), Device: "CAM-7"}, data, sum}
	}
	begin := func(dock string, r rec) *wire.AckMsg {
		t.Helper()
		a, _ := answerBegin(st, lim, dock, wire.BeginMsg{Transfer: "t", Recording: r.meta, Size: int64(len(r.data)), SHA256: r.sum})
		if a.ack == nil {
			t.Fatalf("begin of %s answered %+v, want an ack", r.meta.ID, a.receipt)
		}
		return a.ack
	}
	refused := func(a *wire.AckMsg) bool { return a.Error != "" && strings.Contains(a.Error, "central limit") }
	recs := []rec{mk(1, 2<<10), mk(2, 2<<10), mk(3, 2<<10)}
	for _, r := range recs {
		if a := begin("dock-1", r); a.Error != "" {
			t.Fatalf("begin of %s within the limits: %+v", r.meta.ID, a)
		}
	}
	// Half of the first one arrives.
	if a := answerChunk(st, lim, "dock-1", wire.Chunk{Recording: recs[0].meta.ID, Data: recs[0].data[:1<<10]}); a.ack.Error != "" {
		t.Fatal(a.ack.Error)
	}
	if a := begin("dock-1", mk(4, 1<<10)); !refused(a) {
		t.Fatalf("a 4th upload in progress (at most 3) answered %+v, want a refusal to retry", a)
	}
	if a := begin("dock-1", recs[0]); a.Error != "" || a.Offset != 1<<10 {
		t.Fatalf("resume of an upload in progress at the cap answered %+v, want offset %d", a, 1<<10)
	}
	if a := begin("dock-1", mk(1, 7<<10)); !refused(a) {
		t.Fatalf("an upload in progress announced again larger than the bytes left answered %+v, want a refusal", a)
	}
	if a := begin("dock-2", mk(4, 1<<10)); a.Error != "" {
		t.Fatalf("another dock held back by dock-1's uploads: %+v", a)
	}
	// One is filed: a new one fits again, within the bytes left.
	r := recs[1]
	if a := answerChunk(st, lim, "dock-1", wire.Chunk{Recording: r.meta.ID, Data: r.data}); a.ack.Error != "" {
		t.Fatal(a.ack.Error)
	}
	if e, _, err := answerEnd(st, "dock-1", wire.EndMsg{Recording: r.meta.ID, Size: int64(len(r.data)), SHA256: r.sum}); err != nil || e.receipt == nil {
		t.Fatalf("end: %+v %v", e.ack, err)
	}
	if a := begin("dock-1", mk(5, 7<<10)); !refused(a) {
		t.Fatalf("7 KiB more with 4 KiB in progress (at most 10 KiB) answered %+v, want a refusal", a)
	}
	if a := begin("dock-1", mk(5, 6<<10)); a.Error != "" {
		t.Fatalf("6 KiB more with 4 KiB in progress (at most 10 KiB) answered %+v", a)
	}
	if a := begin("dock-3", mk(6, 11<<10)); !refused(a) {
		t.Fatalf("a recording larger than the whole allowance answered %+v, want a refusal", a)
	}
	if in, err := st.Incoming("dock-1"); err != nil || len(in) != 3 {
		t.Fatalf("dock-1 has %d uploads in progress (%v), want 3: %+v", len(in), err, in)
	}
}

// backdate makes an upload look untouched since at.
func backdate(t *testing.T, st FileStore, dock, id string, at time.Time) {
	t.Helper()
	for _, p := range []string{st.partPath(dock, id), st.statePath(dock, id)} {
		if err := os.Chtimes(p, at, at); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

// An upload in progress untouched for longer than the expiry is removed, its part and its
// state, and the dock's next begin starts it over; a recent one stays; one verified and
// interrupted while filing is filed, never removed; a part a crash left without its state
// goes too.
func TestIdleUploadsExpire(t *testing.T) {
	const dock = "dock-1"
	st := FileStore{Dir: t.TempDir()}
	old := time.Now().Add(-8 * 24 * time.Hour)
	idle := newRecording("CAM-8_VID_0081.mp4", 32<<10, 8<<10, 81, false)
	recent := newRecording("CAM-8_VID_0082.mp4", 32<<10, 8<<10, 82, false)
	filing := newRecording("CAM-8_VID_0083.mp4", 32<<10, 8<<10, 83, false)
	for _, r := range []recording{idle, recent} {
		if _, err := st.Begin(dock, "t1", r.meta, int64(len(r.data)), r.sum); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(dock, r.meta.ID, 0, r.data[:8<<10]); err != nil {
			t.Fatal(err)
		}
	}
	crashAtStep("filing recorded", func() { _, _ = send(st, dock, filing) })
	orphan := filepath.Join(st.Dir, "incoming", dock, "CAM-8_VID_0084.mp4.part")
	if err := os.WriteFile(orphan, []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	backdate(t, st, dock, idle.meta.ID, old)
	backdate(t, st, dock, filing.meta.ID, old)
	if err := os.Chtimes(orphan, old, old); err != nil {
		t.Fatal(err)
	}

	exp, err := st.Expire(time.Now().Add(-7 * 24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range exp {
		got[p.ID] = p.Filing
	}
	if len(got) != 3 || got[idle.meta.ID] || !got[filing.meta.ID] {
		t.Fatalf("expired %+v, want %s removed, %s filed and the orphan part", exp, idle.meta.ID, filing.meta.ID)
	}
	for _, p := range []string{st.partPath(dock, idle.meta.ID), st.statePath(dock, idle.meta.ID), orphan, orphan[:len(orphan)-len(".part")] + ".state"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after its upload expired (%v)", p, err)
		}
	}
	if up, ok, err := st.Held(dock, recent.meta.ID); err != nil || !ok || up.Held != 8<<10 {
		t.Errorf("recent upload after the sweep: %+v %v %v, want 8 KiB held", up, ok, err)
	}
	if s, ok, err := st.Filed(dock, filing.meta.ID); err != nil || !ok || s.SHA256 != filing.sum {
		t.Errorf("verified upload after the sweep: %+v %v %v, want it filed", s, ok, err)
	}
	// The dock comes back: its begin starts the expired one over, and it completes.
	a, err := answerBegin(st, testLimits, dock, idle.begin())
	if err != nil || a.ack == nil || a.ack.Offset != 0 {
		t.Fatalf("begin after expiry: %+v %v, want offset 0", a.ack, err)
	}
	rc, err := send(st, dock, idle)
	if err != nil {
		t.Fatal(err)
	}
	if rc.SHA256 != idle.sum || rc.Error != "" {
		t.Fatalf("receipt after expiry: %+v", rc)
	}
}

// The receiver sweeps idle uploads by itself, every SweepEvery.
func TestReceiverExpiresIdleUploads(t *testing.T) {
	const dock = "dock-1"
	r := startRig(t, Options{Limits: Limits{IncomingExpiry: time.Hour, SweepEvery: 20 * time.Millisecond}}, quiet())
	idle := newRecording("CAM-9_VID_0091.mp4", 16<<10, 8<<10, 91, false)
	if _, err := r.store.Begin(dock, "t1", idle.meta, int64(len(idle.data)), idle.sum); err != nil {
		t.Fatal(err)
	}
	backdate(t, r.store, dock, idle.meta.ID, time.Now().Add(-2*time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := r.store.Held(dock, idle.meta.ID); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an upload idle for 2 h still held 5 s after start, with an expiry of 1 h")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// What the receiver keeps in memory of docks is bounded whatever they send: the docks it
// knows, the alerts of each, its ledger copy, and each device's health samples; the
// newest are kept, and free text is cut short.
func TestDockStateInMemoryIsBounded(t *testing.T) {
	lim := Limits{MaxDocks: 5, MaxAlertsPerDock: 4, MaxLedgerBytes: 4 << 10, MaxDevices: 6, MaxHealthSamples: 3, MaxText: 100}
	r := newReceiver(Options{ManualGrants: true, Limits: lim}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := t.Context()
	send := func(dock, leaf string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := r.handle(ctx, dock, leaf, b); err != nil {
			t.Fatalf("%s %s: %v", dock, leaf, err)
		}
	}
	now := time.Now().UTC()
	for i := range 50 {
		dock := fmt.Sprintf("dock-%02d", i)
		send(dock, wire.TopicStatus, wire.StatusMsg{State: "offline", Version: strings.Repeat("v", 10000)})
		send(dock, wire.TopicReported, wire.ReportedMsg{Version: 1, Status: "rejected", Reason: strings.Repeat("r", 10000)})
		for j := range 20 {
			send(dock, wire.TopicAlert, wire.AlertMsg{ID: fmt.Sprintf("CAM-%d/code-%d", i, j), Code: "x", Detail: strings.Repeat("d", 10000)})
		}
		for j := range 10 {
			var entries []json.RawMessage
			for k := range 20 {
				entries = append(entries, json.RawMessage(fmt.Sprintf(`{"seq":%d,"detail":%q}`, j*20+k+1, strings.Repeat("e", 100))))
			}
			send(dock, wire.TopicLedger, wire.LedgerMsg{Entries: entries})
		}
		for j := range 10 {
			send(dock, wire.TopicHealth, wire.HealthMsg{Device: fmt.Sprintf("CAM-%d", i), Time: now.Add(time.Duration(j) * time.Minute), HealthPct: j})
		}
	}
	r.mu.Lock()
	docks, devices := r.docks.len(), r.health.len()
	r.mu.Unlock()
	if docks > lim.MaxDocks || devices > lim.MaxDevices {
		t.Fatalf("%d docks and %d devices in memory, want at most %d and %d", docks, devices, lim.MaxDocks, lim.MaxDevices)
	}
	alerts := r.Alerts()
	if len(alerts) > lim.MaxDocks*lim.MaxAlertsPerDock {
		t.Fatalf("%d alerts in memory, want at most %d", len(alerts), lim.MaxDocks*lim.MaxAlertsPerDock)
	}
	for k, a := range alerts {
		if len(a.Detail) > lim.MaxText+len("…") {
			t.Fatalf("alert %s keeps a detail of %d bytes, want at most %d", k, len(a.Detail), lim.MaxText)
		}
	}
	// The newest are kept: the last dock, its last alerts, ledger entries and samples.
	if _, ok := alerts["dock-49/CAM-49/code-19"]; !ok {
		t.Fatalf("the newest alert is not kept: %d alerts", len(alerts))
	}
	if _, ok := alerts["dock-49/CAM-49/code-0"]; ok {
		t.Fatal("dock-49's oldest alert kept past MaxAlertsPerDock")
	}
	if rep, ok := r.Reported("dock-49"); !ok || len(rep.Reason) > lim.MaxText+len("…") {
		t.Fatalf("dock-49's report: %v, reason of %d bytes", ok, len(rep.Reason))
	}
	l := r.Ledger("dock-49")
	size := 0
	for _, e := range l {
		size += len(e)
	}
	if size > lim.MaxLedgerBytes || len(l) == 0 || !strings.Contains(string(l[len(l)-1]), `"seq":200`) {
		t.Fatalf("dock-49's ledger copy: %d entries, %d bytes (at most %d), want the newest kept", len(l), size, lim.MaxLedgerBytes)
	}
	if h := r.Health("CAM-49"); len(h) != lim.MaxHealthSamples || h[len(h)-1].HealthPct != 9 {
		t.Fatalf("CAM-49's health: %d samples, want the newest %d", len(h), lim.MaxHealthSamples)
	}
	if r.Ledger("dock-00") != nil {
		t.Fatal("dock-00, heard from least recently, still in memory past MaxDocks")
	}
	// A dock id no dock can have, or a device id, keeps nothing.
	for _, bad := range []string{strings.Repeat("x", 300), "dock 1", "dock\n1"} {
		b, _ := json.Marshal(wire.StatusMsg{State: "offline"})
		if err := r.handle(ctx, bad, wire.TopicStatus, b); err == nil {
			t.Errorf("status from dock %q accepted", bad)
		}
		b, _ = json.Marshal(wire.HealthMsg{Device: bad})
		if err := r.handle(ctx, "dock-49", wire.TopicHealth, b); err == nil {
			t.Errorf("health of device %q accepted", bad)
		}
	}
}

// A crash inside the cleanup after filing (the part's name removed, its state not yet)
// leaves a filed upload's state behind: the sweep discards it instead of failing on the
// missing part every hour and counting it against the dock's limits for good.
func TestSweepClearsAFiledUploadsLeftovers(t *testing.T) {
	const dock = "dock-1"
	st := FileStore{Dir: t.TempDir()}
	r := newRecording("CAM-8_VID_0091.mp4", 32<<10, 8<<10, 91, false)
	crashAtStep("part's name removed", func() { _, _ = send(st, dock, r) })
	if _, ok, err := st.Filed(dock, r.meta.ID); err != nil || !ok {
		t.Fatalf("not filed before the crash in its cleanup: %v %v", ok, err)
	}
	backdate(t, st, dock, r.meta.ID, time.Now().Add(-8*24*time.Hour))
	for i := range 2 {
		if _, err := st.Expire(time.Now().Add(-7 * 24 * time.Hour)); err != nil {
			t.Fatalf("sweep %d: %v", i+1, err)
		}
	}
	if left, err := st.Incoming(dock); err != nil || len(left) != 0 {
		t.Fatalf("after two sweeps still in progress: %+v, %v", left, err)
	}
	if _, ok, err := st.Filed(dock, r.meta.ID); err != nil || !ok {
		t.Fatalf("the filed recording went with the leftovers: %v %v", ok, err)
	}
}
