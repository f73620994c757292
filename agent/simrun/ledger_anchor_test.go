package simrun

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"dock/queue"
)

// End to end: the dock exports its ledger, central chains it and acknowledges its head
// sealed, and the dock keeps that head as its anchor; the ledger verifies against it and
// central holds the same head in its store.
func TestEndToEndLedgerAnchored(t *testing.T) {
	_, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Dock: "dock-anchor", Log: testLog(t)})
	for range 3 {
		if err := h.Store.Record(queue.Event{Kind: queue.EvAccess, Detail: "anchor test"}); err != nil {
			t.Fatal(err)
		}
	}
	want := h.Store.LedgerHead()
	deadline := time.Now().Add(30 * time.Second)
	var an queue.Anchor
	for {
		an, _, _ = h.Store.Anchor()
		if an.Seq >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anchor at %d, the ledger at %d: central's acknowledgement not kept", an.Seq, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := h.Store.VerifyAgainst(an); err != nil {
		t.Fatalf("the ledger against its anchor: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(h.Dir, "central", "ledger", "dock-anchor.head")); err != nil || len(b) == 0 {
		t.Fatalf("central's head file: %v", err)
	}
}
