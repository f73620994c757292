package agent

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"dock/agent/ctlview"
	"dock/queue"
	"dock/uplink/wire"
)

// The control socket's ledger verification (dockctl ledger-verify) checks the chain
// against the head central acknowledged: a ledger whose entry at the anchor has another
// hash than central's (rewritten and rechained, or central's head taken from a ledger-ack)
// is reported broken at that entry, though its chain alone is intact.
func TestLedgerVerifyChecksTheAnchor(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := queue.Open(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := &Agent{cfg: Config{Dock: "dock-1"}, store: store, log: log, now: func() time.Time { return time.Now().UTC() }}
	for range 5 {
		if err := store.Record(queue.Event{Kind: queue.EvAccess, Detail: "read"}); err != nil {
			t.Fatal(err)
		}
	}
	verify := func() ctlview.LedgerCheck {
		t.Helper()
		w := httptest.NewRecorder()
		a.controlHandler().ServeHTTP(w, httptest.NewRequest("GET", "/v1/ledger/verify", nil))
		var c ctlview.LedgerCheck
		if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v", w.Body, err)
		}
		return c
	}
	if c := verify(); !c.OK || c.Entries != 5 {
		t.Fatalf("intact ledger without an anchor: %+v", c)
	}
	// Central acknowledged entry 4 with a hash this ledger does not hold there.
	if _, err := store.SetAnchor(queue.Anchor{Seq: 4, Hash: strings.Repeat("ab", 32)}); err != nil {
		t.Fatal(err)
	}
	if c := verify(); c.OK || c.BadSeq != 4 || !strings.Contains(c.Reason, "anchor") {
		t.Fatalf("ledger verified against central's head 4 with another hash: %+v", c)
	}
}

// The dock keeps the highest head central acknowledged, and only that.
func TestLedgerAckKeepsTheHighestHead(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := queue.Open(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := &Agent{cfg: Config{Dock: "dock-1"}, store: store, log: log, now: func() time.Time { return time.Now().UTC() }}
	a.takeLedgerAck(wire.LedgerAckMsg{HeadSeq: 9, HeadHash: "h9"})
	a.takeLedgerAck(wire.LedgerAckMsg{HeadSeq: 3, HeadHash: "h3"})
	a.takeLedgerAck(wire.LedgerAckMsg{})
	if an, _, _ := store.Anchor(); an.Seq != 9 || an.Hash != "h9" {
		t.Fatalf("anchor %+v, want 9/h9", an)
	}
}
