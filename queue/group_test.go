package queue

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
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

// Stats and LedgerHead answer while a group commit waits on its fsync, and show the store
// as it was before that commit; once it is durable they show it. (They used to take the
// lock the committer holds across the whole commit, so a slow disk stalled telemetry, the
// sender's backlog announcements and the ledger export.)
func TestReadersDoNotWaitOnAGroupCommit(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if err := s.Record(Event{Kind: EvInput, Detail: "one"}); err != nil {
		t.Fatal(err)
	}
	rec := Recording{ID: "r1", Name: "a.mp4", Device: "CAM-1", Size: 3, SHA256: strings.Repeat("0", 64), Start: time.Now().UTC()}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before Close, which waits for the commit
	s.commit = func(txn *badger.Txn) error {
		entered <- struct{}{}
		<-release
		return txn.Commit()
	}
	committed := make(chan error, 1)
	go func() {
		_, err := s.Commit(rec, Event{Kind: EvOffloaded, Recording: rec.ID})
		committed <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the commit never reached the disk")
	}
	type seen struct {
		head    uint64
		spooled int
	}
	look := func() seen {
		st, err := s.Stats()
		if err != nil {
			t.Error(err)
		}
		return seen{s.LedgerHead(), st.Count[Spooled]}
	}
	answered := make(chan seen, 1)
	go func() { answered <- look() }()
	select {
	case got := <-answered:
		if want := (seen{1, 0}); got != want {
			t.Errorf("while the commit is held, readers see %+v, want the store before it, %+v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stats and LedgerHead wait on a group commit's fsync")
	}
	free()
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if got, want := look(), (seen{2, 1}); got != want {
		t.Errorf("once committed, readers see %+v, want %+v", got, want)
	}
}
