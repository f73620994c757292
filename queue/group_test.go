package queue

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// Updates that together outgrow one Badger transaction are committed in several, all of
// them: a group never fails an update because of the others it was grouped with.
func TestGroupLargerThanATransactionCommitsEveryUpdate(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	const updates, keys = 6, 200 // each update ~180 KB: any two outgrow Badger's ~300 KB
	value := bytes.Repeat([]byte{'v'}, 900)
	var group []*write
	for u := range updates {
		group = append(group, &write{fn: func(b *batch) error {
			for i := range keys {
				if err := b.set(fmt.Appendf(nil, "d/test/%d/%03d", u, i), value); err != nil {
					return err
				}
			}
			return nil
		}, events: []Event{{Kind: EvConfig, Detail: fmt.Sprint("bulk ", u)}}, done: make(chan error, 1)})
	}
	transactions := 0
	for rest := group; len(rest) > 0; transactions++ {
		rest = s.commitGroup(rest)
	}
	if transactions < updates/2 {
		t.Errorf("%d updates of ~180 KB went into %d transactions", updates, transactions)
	}
	for u, w := range group {
		if err := <-w.done; err != nil {
			t.Errorf("update %d: %v", u, err)
		}
	}
	n := 0
	if err := s.Docs("test", func(id string, raw []byte) error {
		if !bytes.Equal(raw, value) {
			t.Errorf("%s: %d bytes", id, len(raw))
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != updates*keys {
		t.Errorf("%d keys stored, want %d", n, updates*keys)
	}
	if got, err := s.VerifyLedger(); err != nil || got != updates {
		t.Errorf("ledger: %d entries, %v", got, err)
	}
}

// The committer keeps recently committed records decoded; a bulk import that rewrites one
// of them must not leave the old one to be read.
func TestImportReplacesRecentlyCommittedRecords(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	r := Recording{ID: "CAM-1_001.mp4", Device: "CAM-1", Size: 10, SHA256: sum([]byte("x")), Start: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)}
	if _, err := s.Commit(r, Event{Kind: EvOffloaded, Recording: r.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lease(r.ID, "t1"); err != nil { // now decoded as Uploading
		t.Fatal(err)
	}
	// An index rebuilt from central's receipts: the recording is verified.
	v := r
	v.State, v.VerifiedAt = Verified, time.Date(2026, 6, 2, 8, 0, 0, 0, time.UTC)
	if err := s.Import([]Recording{v}, "rebuilt"); err != nil {
		t.Fatal(err)
	}
	// Free reads the stored record (verified) before its transition, which reads the
	// record as the committer knows it: an uploading one from before the import refuses.
	if err := s.Free(r.ID); err != nil {
		t.Fatalf("free after the import: %v", err)
	}
	got, err := s.Get(r.ID)
	if err != nil || got.State != Freed {
		t.Fatalf("after the import and the free: %+v, %v", got, err)
	}
}
