package sqlitequeue

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"dock/queue"
)

// The peer does the queue's work: states step as queue.Next says, every change leaves a
// ledger entry that dock/queue's own chain check accepts, leases survive a reopen and are
// released, and concurrent callers' updates all land.
func TestLeaseAndReceiptLikeTheQueue(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []queue.Recording
	for i := range 100 {
		recs = append(recs, queue.Recording{ID: fmt.Sprintf("CAM_%03d", i), Start: t0.Add(time.Duration(99-i) * time.Minute),
			Size: 10, SHA256: "ab", Class: queue.Patrol, State: queue.Spooled})
	}
	if err := s.Import(recs, "test"); err != nil {
		t.Fatal(err)
	}
	p, err := s.Pending(2)
	if err != nil || len(p) != 2 || p[0].ID != "CAM_099" || p[1].ID != "CAM_098" {
		t.Fatalf("pending: %v %v, want the oldest two first", p, err)
	}
	if _, err := s.Lease("CAM_099", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lease("CAM_099", "t2"); err == nil {
		t.Fatal("a leased recording was leased again")
	}
	if _, err := s.Verify("CAM_099", "other", 10); !errors.Is(err, queue.ErrHashMismatch) {
		t.Fatalf("receipt with another hash: %v", err)
	}
	// 64 callers at once, each a lease and a receipt.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := recs[i].ID
			if _, err := s.Lease(id, "bulk"); err != nil {
				errs <- err
				return
			}
			if r, err := s.Verify(id, "ab", 10); err != nil || r.State != queue.Verified {
				errs <- fmt.Errorf("verify %s: %s %v", id, r.State, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.ReleaseAll("restart"); err != nil || n != 1 {
		t.Fatalf("released %d leases, %v; want 1 (CAM_099)", n, err)
	}
	if s.Count() != 100 {
		t.Fatalf("tally counts %d recordings, want 100", s.Count())
	}
	var entries []queue.Entry
	rows, err := s.db.Query(`SELECT line FROM ledger ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line []byte
		var e queue.Entry
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	// import, the first lease, 64 x (lease, verify), the release after reopen.
	if want := 1 + 1 + 128 + 1; len(entries) != want {
		t.Fatalf("%d ledger entries, want %d", len(entries), want)
	}
	if err := queue.CheckChain(entries); err != nil {
		t.Fatalf("ledger chain: %v", err)
	}
}
