package queue

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// rewriteLedger is an attacker with the dock's disk: it changes the detail of entry seq in
// Badger and recomputes the chain from there to the head, so that the chain verifies.
func rewriteLedger(t *testing.T, s *Store, seq uint64, detail string) {
	t.Helper()
	var all []Entry
	if err := s.Ledger(1, func(e Entry) error { all = append(all, e); return nil }); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		prev := genesis
		for _, e := range all {
			if e.Seq == seq {
				e.Detail = detail
			}
			e.Prev = prev
			h, line, err := e.sealed()
			if err != nil {
				return err
			}
			if err := txn.Set(ledgerKey(e.Seq), line); err != nil {
				return err
			}
			prev = h
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A ledger rewritten and rechained by someone with the disk passes VerifyLedger, but not
// verification against the head central acknowledged: the entry at the anchor's seq no
// longer has the hash central holds.
func TestRewriteBeforeAnchorIsCaught(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	for i := 0; i < 10; i++ {
		if err := s.Record(Event{Kind: EvAccess, Recording: "r", Detail: "read"}); err != nil {
			t.Fatal(err)
		}
	}
	var at Entry
	stop := errors.New("stop")
	_ = s.Ledger(8, func(e Entry) error { at = e; return stop })
	anchor := Anchor{Seq: at.Seq, Hash: at.Hash}
	if _, err := s.VerifyAgainst(anchor); err != nil {
		t.Fatalf("an untouched ledger against its anchor: %v", err)
	}
	rewriteLedger(t, s, 3, "never read")
	if _, err := s.VerifyLedger(); err != nil {
		t.Fatalf("the rechained ledger should pass VerifyLedger alone (that is the weakness): %v", err)
	}
	_, err := s.VerifyAgainst(anchor)
	var bad *BadEntry
	if !errors.As(err, &bad) || bad.Seq != 8 || !strings.Contains(err.Error(), "anchor") {
		t.Fatalf("a ledger rewritten before the anchor verified against it: %v", err)
	}
	// Truncated below the anchor: the anchored entry is missing.
	if _, err := s.VerifyAgainst(Anchor{Seq: 11, Hash: at.Hash}); !errors.As(err, &bad) || bad.Seq != 11 {
		t.Fatalf("an anchor past the ledger's head: %v", err)
	}
}

// The anchor document only moves forward: an older acknowledgement (a late or replayed
// one) does not replace a newer one.
func TestAnchorOnlyMovesForward(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if a, found, err := s.Anchor(); err != nil || found || a.Seq != 0 {
		t.Fatalf("anchor of a new store: %+v %v %v", a, found, err)
	}
	if ok, err := s.SetAnchor(Anchor{Seq: 5, Hash: "x"}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if ok, err := s.SetAnchor(Anchor{Seq: 3, Hash: "y"}); err != nil || ok {
		t.Fatal("an older anchor replaced a newer one", ok, err)
	}
	if a, _, _ := s.Anchor(); a.Seq != 5 || a.Hash != "x" {
		t.Fatalf("anchor %+v", a)
	}
}

// Ledger batches are bounded by bytes as well as entries, so that none goes past the
// broker's message size limit (mosquitto drops it and still acknowledges it at QoS 1).
func TestLedgerBatchSplitsLargeEntries(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	big := strings.Repeat("x", 100<<10)
	for i := 0; i < 12; i++ {
		if err := s.Record(Event{Kind: EvInput, Detail: big}); err != nil {
			t.Fatal(err)
		}
	}
	var from uint64 = 1
	batches := 0
	for from <= s.LedgerHead() {
		raw, last, err := s.LedgerBatch(from, 200, 512<<10)
		if err != nil || len(raw) == 0 {
			t.Fatalf("batch from %d: %d entries, %v", from, len(raw), err)
		}
		n := 0
		for i, r := range raw {
			n += len(r)
			var e Entry
			if err := json.Unmarshal(r, &e); err != nil || e.Seq != from+uint64(i) {
				t.Fatalf("entry %d of the batch from %d: seq %d, %v", i, from, e.Seq, err)
			}
		}
		if n > 512<<10 {
			t.Fatalf("batch from %d holds %d bytes, over 512 KiB", from, n)
		}
		from = last + 1
		batches++
	}
	if batches < 3 {
		t.Fatalf("12 entries of 100 KiB went in %d batches", batches)
	}
	// Small entries: at most 200 a batch.
	for i := 0; i < 250; i++ {
		_ = s.Record(Event{Kind: EvAccess})
	}
	raw, _, _ := s.LedgerBatch(13, 200, 512<<10)
	if len(raw) != 200 {
		t.Fatalf("a batch of small entries holds %d, want 200", len(raw))
	}
}
