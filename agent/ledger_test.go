package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"dock/health"
	"dock/queue"
	"dock/uplink/clock"
)

// A ledger entry the store refuses is held, raises ledger-unwritable, and is written once
// the store takes writes again; the fault then clears. Nothing vanishes.
func TestRefusedLedgerEntriesAreHeldAndWrittenLater(t *testing.T) {
	store, err := queue.Open(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := func() time.Time { return time.Now().UTC() }
	faults, err := newFaultRegistry(store, log, now)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{Dock: "dock-1"}, store: store, log: log, now: now, faults: faults}
	broken := errors.New("disk says no")
	a.record = func(...queue.Event) error { return broken }

	ev := queue.Event{Kind: queue.EvCameraFreeing, Device: "CAM-1", Recording: "r1", Detail: "deleting r1"}
	if err := a.note(ev); !errors.Is(err, broken) {
		t.Fatalf("note on a refusing store = %v, want the store's error (a custody step must not go ahead)", err)
	}
	id := health.FaultID("dock-1", codeLedgerUnwritable)
	if f, ok := a.faults.get(id); !ok || f.State == health.Cleared {
		t.Fatalf("no open %s fault: %+v", codeLedgerUnwritable, a.Faults())
	}
	if n := a.flushNotes(); n != 1 {
		t.Fatalf("%d entries held while the store still refuses, want 1", n)
	}

	a.record = store.Record
	if n := a.flushNotes(); n != 0 {
		t.Fatalf("%d entries still held once the store takes writes", n)
	}
	found := false
	if err := store.Ledger(1, func(e queue.Entry) error {
		found = found || e.Recording == "r1" && e.Kind == queue.EvCameraFreeing && strings.Contains(e.Detail, "written late")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("the refused entry never reached the ledger")
	}
	if f, _ := a.faults.get(id); f.State != health.Cleared {
		t.Fatalf("%s still %s after the held entries were written", codeLedgerUnwritable, f.State)
	}
	if _, err := store.VerifyLedger(); err != nil {
		t.Fatal(err)
	}
}

// The held entries are retried on the agent's clock, every period and not before: the
// test advances a fake clock instead of waiting.
func TestHeldLedgerEntriesAreRetriedOnTheAgentsClock(t *testing.T) {
	store, err := queue.Open(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clk := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := &Agent{cfg: Config{Dock: "dock-1"}, store: store, log: log, wall: clk}
	a.now = func() time.Time { return a.timeSource().Now().UTC() }
	if a.faults, err = newFaultRegistry(store, log, a.now); err != nil {
		t.Fatal(err)
	}
	a.record = func(...queue.Event) error { return errors.New("disk says no") }
	_ = a.note(queue.Event{Kind: queue.EvCameraFreeing, Device: "CAM-1", Recording: "r1", Detail: "deleting r1"})
	a.record = store.Record // the store takes writes again; only the retry loop writes it
	held := func() int { a.notesMu.Lock(); defer a.notesMu.Unlock(); return len(a.unwritten) }

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); a.retryNotes(ctx, time.Minute) }()
	defer func() { cancel(); <-done }()
	if err := clk.WaitFor(ctx, 1); err != nil {
		t.Fatalf("the retry loop armed no ticker: %v", err)
	}
	clk.Advance(59 * time.Second)
	if n := held(); n != 1 {
		t.Fatalf("%d entries held 59 s into a 1 min retry period, want the 1 still held", n)
	}
	clk.Advance(time.Second)
	for held() != 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the held entry was not written when the retry period came round")
		case <-time.After(time.Millisecond):
		}
	}
}
