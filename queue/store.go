package queue

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"filippo.io/age"
	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Key layout in Badger:
//
//	r/<id>                  Recording (JSON)
//	p/<rank><start>/<id>    empty: a Spooled recording waiting to upload, in upload order
//	l/<seq, 8 bytes BE>     ledger Entry (JSON)
//	m/ledger                ledger head (seq and hash)
//	d/<kind>/<id>           a document of the agent's (slot states, faults, config)
const (
	pRec     = "r/"
	pPending = "p/"
	pLedger  = "l/"
	kHead    = "m/ledger"
	kTally   = "m/tally"
	pDoc     = "d/"
)

// ErrNotFound means no recording or document has that id.
var ErrNotFound = errors.New("queue: not found")

// ErrHashMismatch means a receipt's hash differs from the dock's: an integrity fault.
var ErrHashMismatch = errors.New("queue: receipt hash does not match")

// Options are the Badger settings for a dock board: small, and safe on 32-bit ARM.
//
// On armv7 Badger's allocator wraps a 32-bit shift when the table builder outgrows its first
// buffer (2 x BaseTableSize) and overwrites data; keeping BaseTableSize >= MemTableSize keeps
// the L0 flush inside that buffer. Tables are small (2 MiB) at every level
// (TableSizeMultiplier 1, where Badger doubles them per level) because a compaction builds up
// to eight tables plus one per split at once, each holding 2 x its level's table size: with
// tables doubling from 2 MiB, a compaction over a million recordings held 130 MiB of builders
// and the Go collector ran without pause under the unit's GOMEMLIMIT (lease + receipt at a
// fifth of the speed); with 8 MiB base tables it took 340 MiB, more than the unit's MemoryMax.
// The value log is mapped at 2 x ValueLogFileSize, so it stays at 16 MiB to fit a 32-bit
// address space. No compression, so no block cache is needed. Writes are synced: a commit may
// license deleting footage from a camera.
func Options(dir string) badger.Options {
	o := badger.DefaultOptions(dir)
	o.MemTableSize = 2 << 20
	o.BaseTableSize = 2 << 20
	o.TableSizeMultiplier = 1
	o.NumMemtables = 2
	o.NumLevelZeroTables = 2
	o.NumLevelZeroTablesStall = 8
	o.NumCompactors = 2
	o.Compression = options.None
	o.BlockCacheSize = 0
	o.IndexCacheSize = 0
	o.ValueThreshold = 1 << 10
	o.ValueLogFileSize = 16 << 20
	o.SyncWrites = true
	o.Logger = nil
	return o
}

// Store is the dock's durable state.
type Store struct {
	db    *badger.DB
	spool *Spool
	log   *slog.Logger
	now   func() time.Time

	mu    sync.Mutex // serialises writes that append to the ledger
	seq   uint64
	head  string
	tally tally // committed; changed only under mu

	landed landed // records recently committed or read, decoded

	heads heads // where each class of the pending index starts

	inflight claims // recording ids being offloaded

	// commit commits a group's transaction: Badger's, or in tests one that applies it
	// and then reports an error, as Badger does when the sync after the write fails.
	commit func(*badger.Txn) error

	writes chan *write   // updates waiting for the committer
	idle   chan struct{} // closed when the committer has ended

	stop chan struct{}
	wg   sync.WaitGroup
}

// removeEmptyLogs deletes zero-byte write-ahead (.mem) and value-log (.vlog) files. Badger
// creates such a file and sizes it in two steps; a power cut between them leaves an empty
// file that badger.Open refuses for good (dgraph-io/badger#2207, found here by
// TestPowerCutLosesNothing). An empty log holds no entry, so nothing is lost by removing it.
func removeEmptyLogs(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); ext != ".mem" && ext != ".vlog" {
			continue
		}
		if info, err := e.Info(); err != nil || info.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
		log.Warn("queue: removed an empty badger log left by a power cut", "file", e.Name())
	}
	return syncDir(dir)
}

// Open opens (or creates) the store under dir: dir/db for Badger, dir/spool for footage.
func Open(dir string, log *slog.Logger) (*Store, error) {
	sp, err := openSpool(filepath.Join(dir, "spool"))
	if err != nil {
		return nil, err
	}
	opts := Options(filepath.Join(dir, "db"))
	opts.Logger = badgerLog{log}
	if err := removeEmptyLogs(opts.Dir, log); err != nil {
		return nil, fmt.Errorf("open queue %s: %w", dir, err)
	}
	db, err := badger.Open(opts)
	if err != nil {
		// A failed Open can still return a DB that hangs when used: never touch it.
		return nil, fmt.Errorf("open queue %s: %w", dir, err)
	}
	s := &Store{db: db, spool: sp, log: log, now: func() time.Time { return time.Now().UTC() }, head: genesis, stop: make(chan struct{}), writes: make(chan *write, maxGroup), idle: make(chan struct{}),
		commit: (*badger.Txn).Commit}
	if err := s.loadHead(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue: ledger head: %w", err)
	}
	if err := s.loadTally(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue: tally: %w", err)
	}
	s.wg.Add(2)
	go s.gcLoop()
	go s.committer()
	return s, nil
}

// loadHead reads the ledger's head (its last sequence number and hash) as stored.
func (s *Store) loadHead() error {
	seq, head := uint64(0), genesis
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(kHead))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			var h struct {
				Seq  uint64 `json:"seq"`
				Hash string `json:"hash"`
			}
			if err := json.Unmarshal(v, &h); err != nil {
				return err
			}
			seq, head = h.Seq, h.Hash
			return nil
		})
	})
	if err == nil { // a head that cannot be read leaves the one known: never back to seq 0
		s.seq, s.head = seq, head
	}
	return err
}

// loadTally reads the stored tally, or counts the records once (a store from before the
// tally) and stores the count.
func (s *Store) loadTally() error {
	s.tally = newTally()
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(kTally))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &s.tally) })
	})
	if err != nil || found {
		s.tally = s.tally.clone() // maps made where the stored JSON had none
		return err
	}
	return s.recount()
}

// recount rebuilds the tally from the records and stores it.
func (s *Store) recount() error {
	t, err := s.scanStats()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(kTally), b) }); err != nil {
		return err
	}
	s.tally = t
	return nil
}

// Close stops background work and closes Badger.
func (s *Store) Close() error {
	close(s.stop)
	s.wg.Wait()
	return s.db.Close()
}

// gcLoop reclaims value-log space on a schedule; Badger never does it by itself.
func (s *Store) gcLoop() {
	defer s.wg.Done()
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			for s.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Spool is the store's footage directory.
func (s *Store) Spool() *Spool { return s.spool }

// Encrypt makes every spool file written from now on encrypted for key, and lets the
// store read the encrypted ones. Call it before any offload.
func (s *Store) Encrypt(key *age.X25519Identity) { s.spool.key = key }

// appendLedger adds events to the hash chain after (seq, head) in b and moves the head.
func appendLedger(b *batch, now func() time.Time, seq uint64, head string, events []Event) (uint64, string, error) {
	for _, ev := range events {
		seq++
		e := Entry{Seq: seq, Time: now(), Event: ev, Prev: head}
		h, v, err := e.sealed()
		if err != nil {
			return 0, "", err
		}
		if err := b.set(ledgerKey(seq), v); err != nil {
			return 0, "", err
		}
		head = h
	}
	if len(events) > 0 {
		v, _ := json.Marshal(struct {
			Seq  uint64 `json:"seq"`
			Hash string `json:"hash"`
		}{seq, head})
		if err := b.set([]byte(kHead), v); err != nil {
			return 0, "", err
		}
	}
	return seq, head, nil
}

func ledgerKey(seq uint64) []byte {
	k := []byte(pLedger + "        ")
	binary.BigEndian.PutUint64(k[len(pLedger):], seq)
	return k
}

// Record appends events to the ledger.
func (s *Store) Record(events ...Event) error {
	if err := s.update(nil, events...); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Ledger calls fn for every entry from seq from (1 for all), in order.
func (s *Store) Ledger(from uint64, fn func(Entry) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pLedger), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(ledgerKey(max(from, 1))); it.Valid(); it.Next() {
			var e Entry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("ledger entry %x: %w", it.Item().Key(), err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// VerifyLedger checks the whole chain and returns how many entries it holds. A broken
// chain is a *BadEntry naming the first bad entry.
func (s *Store) VerifyLedger() (int, error) {
	prev, want, n := genesis, uint64(1), 0
	err := s.Ledger(1, func(e Entry) error {
		if err := checkEntry(e, prev, want); err != nil {
			return err
		}
		prev, want = e.Hash, want+1
		n++
		return nil
	})
	return n, err
}

func recKey(id string) []byte { return []byte(pRec + id) }

func pendingKey(r Recording) []byte {
	return append(append(pendingAt(r.rank(), r.Start), '/'), r.ID...)
}

func getRec(from reader, id string) (Recording, error) {
	if b, ok := from.(*batch); ok {
		if r, ok, err := b.record(id); ok {
			return r, err
		}
	}
	var r Recording
	err := from.value(recKey(id), func(v []byte) error { return json.Unmarshal(v, &r) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return r, fmt.Errorf("recording %s: %w", id, ErrNotFound)
	}
	return r, err
}

// Get returns the recording with id, as last committed.
func (s *Store) Get(id string) (Recording, error) {
	r, ok, gen := s.landed.get(id)
	if ok {
		return r, nil
	}
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		r, err = getRec(txnReader{txn}, id)
		return err
	})
	if err == nil {
		s.landed.keep(gen, r)
	}
	return r, err
}

// Commit records a recording that Spool.Write has made durable. It is idempotent by id:
// committing a known id again with the same hash and size changes nothing and reports the
// stored record; with others it is a *ConflictError.
func (s *Store) Commit(rec Recording, ev Event) (Recording, error) {
	rec.State = Spooled
	rec.SpooledAt = s.now()
	if rec.Class == "" {
		rec.Class = Patrol
	}
	var stored Recording
	existed := false
	err := s.update(func(b *batch) error {
		if old, err := getRec(b, rec.ID); err == nil {
			if old.SHA256 != rec.SHA256 || old.Size != rec.Size {
				return &ConflictError{ID: rec.ID, Held: old.SHA256, SHA256: rec.SHA256, Size: rec.Size}
			}
			stored, existed = old, true
			return errAlready
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := b.putRec(rec); err != nil {
			return err
		}
		stored = rec
		b.changed(nil, &rec)
		return b.setPending(rec)
	}, ev)
	if existed {
		return stored, nil
	}
	if err != nil {
		return rec, fmt.Errorf("commit %s: %w", rec.ID, err)
	}
	return stored, nil
}

var errAlready = errors.New("already committed")

// transition applies step to recording id, lets change adjust the record, and appends ev,
// all in one transaction.
func (s *Store) transition(id string, step Step, change func(*Recording) error, ev Event) (Recording, error) {
	// Read the record here, in the caller's goroutine: the committer then finds it decoded
	// among the landed records instead of reading it in its turn, with every update of
	// the group waiting.
	if _, err := s.Get(id); err != nil {
		return Recording{}, fmt.Errorf("%s %s: %w", step, id, err)
	}
	var out Recording
	err := s.update(func(b *batch) error {
		r, err := getRec(b, id)
		if err != nil {
			return err
		}
		was := r
		next, err := Next(r.State, step)
		if err != nil {
			return err
		}
		if r.State == Spooled && next != Spooled {
			if err := b.delete(pendingKey(r)); err != nil {
				return err
			}
		}
		if change != nil {
			if err := change(&r); err != nil {
				return err
			}
		}
		r.State = next
		if next == Spooled {
			if err := b.setPending(r); err != nil {
				return err
			}
		}
		out = r
		b.changed(&was, &r)
		return b.putRec(r)
	}, ev)
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", step, id, err)
	}
	return out, nil
}

// Pending returns up to n recordings waiting to upload, in upload order: holds, then
// evidence, then patrol; oldest first within each.
func (s *Store) Pending(n int) ([]Recording, error) {
	var out []Recording
	if n <= 0 {
		return nil, nil
	}
	m := s.heads.mark()
	err := s.db.View(func(txn *badger.Txn) error {
		for r := 0; r < classes && len(out) < n; r++ {
			err := s.eachPending(txn, m, r, func(k []byte) (bool, error) {
				rec, err := getRec(txnReader{txn}, pendingID(k))
				if err != nil {
					return false, err
				}
				out = append(out, rec)
				return len(out) < n, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Lease hands recording id to transfer; no other transfer can take it until it is
// released or verified.
func (s *Store) Lease(id, transfer string) (Recording, error) {
	return s.transition(id, StepLease, func(r *Recording) error {
		r.Transfer = transfer
		return nil
	}, Event{Kind: EvAccess, Recording: id, Detail: "read for upload, transfer " + transfer})
}

// Release returns a leased recording to the queue (its transfer ended without a receipt).
func (s *Store) Release(id, why string) (Recording, error) {
	return s.transition(id, StepRelease, func(r *Recording) error {
		r.Transfer = ""
		return nil
	}, Event{Kind: EvUploaded, Recording: id, Detail: "transfer ended without receipt: " + why})
}

// Progress persists how many bytes central acknowledged, for resume.
func (s *Store) Progress(id string, acked int64) error {
	return s.update(func(b *batch) error {
		r, err := getRec(b, id)
		if err != nil {
			return err
		}
		if r.State != Uploading {
			return fmt.Errorf("progress %s: not uploading (%s)", id, r.State)
		}
		r.Acked = acked
		return b.putRec(r)
	})
}

// Verify applies central's receipt. A hash or size that differs from the dock's is
// recorded as an integrity fault and changes nothing else (the copy is kept).
func (s *Store) Verify(id, sha string, size int64) (Recording, error) {
	r, err := s.Get(id)
	if err != nil {
		return r, err
	}
	if r.SHA256 != sha || r.Size != size {
		ev := Event{Kind: EvRejected, Device: r.Device, Recording: id,
			Detail: fmt.Sprintf("receipt sha256 %s size %d; dock has %s size %d", sha, size, r.SHA256, r.Size)}
		if err := s.Record(ev); err != nil {
			return r, err
		}
		return r, fmt.Errorf("verify %s: %w", id, ErrHashMismatch)
	}
	if r.State == Verified || r.State == Freed {
		return r, nil // a repeated receipt: idempotent
	}
	return s.transition(id, StepVerify, func(r *Recording) error {
		r.Transfer = ""
		r.Acked = r.Size
		r.VerifiedAt = s.now()
		return nil
	}, Event{Kind: EvVerified, Device: r.Device, Recording: id, Detail: "central receipt sha256 " + sha})
}

// ReleaseHold records central's release of a hold, ordered by by, making a verified
// recording freeable.
func (s *Store) ReleaseHold(id, by string) (Recording, error) {
	var out Recording
	err := s.update(func(b *batch) error {
		r, err := getRec(b, id)
		if err != nil {
			return err
		}
		r.Released = true
		out = r
		return b.putRec(r)
	}, Event{Kind: EvHold, Recording: id, Detail: fmt.Sprintf("hold released by central, ordered by %q", by)})
	return out, err
}

// Free deletes the dock's copy of a verified recording. It refuses anything unverified
// or under an unreleased hold. The record moves to Freed first, then the file goes: a
// crash between the two leaves a file that FreeOrphans removes.
func (s *Store) Free(id string) error {
	r, err := s.Get(id)
	if err != nil {
		return err
	}
	if !r.Freeable() {
		return fmt.Errorf("free %s: not freeable (state %s, hold %q released %v)", id, r.State, r.Hold, r.Released)
	}
	if _, err := s.transition(id, StepFree, nil, Event{Kind: EvFreed, Device: r.Device, Recording: id, Detail: "spool copy deleted after verified receipt"}); err != nil {
		return err
	}
	return s.spool.remove(id)
}

// Withdraw removes a just-spooled recording that must not stand (its source changed while
// it was copied), with a ledger entry. Only a Spooled recording that was never leased can
// be withdrawn: the camera still holds the original.
func (s *Store) Withdraw(id, why string) error {
	err := s.update(func(b *batch) error {
		r, err := getRec(b, id)
		if err != nil {
			return err
		}
		if r.State != Spooled {
			return fmt.Errorf("withdraw %s: %s, not spooled", id, r.State)
		}
		if err := b.delete(pendingKey(r)); err != nil {
			return err
		}
		b.changed(&r, nil)
		return b.delete(recKey(id))
	}, Event{Kind: EvInput, Recording: id, Detail: "spool copy withdrawn: " + why})
	if err != nil {
		return err
	}
	return s.spool.remove(id)
}

// FreeOrphans removes spool files whose records are Freed (a crash between Free's two steps).
func (s *Store) FreeOrphans() (int, error) {
	paths, err := filepath.Glob(filepath.Join(s.spool.dir, "*.rec"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range paths {
		id := filepath.Base(p)
		id = id[:len(id)-len(".rec")]
		r, err := s.Get(id)
		if err == nil && r.State == Freed {
			if err := s.spool.remove(id); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// Open returns recording id's original bytes from the spool.
func (s *Store) Open(id string) (*Footage, error) {
	r, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	return s.spool.open(r)
}

// Stats summarise the queue.
type Stats struct {
	Count  map[State]int   `json:"count"`
	Bytes  map[State]int64 `json:"bytes"`
	Oldest time.Time       `json:"oldest,omitzero"` // oldest recording not yet verified
	// Waiting counts recordings not yet verified by upload class: hold, evidence, patrol.
	Waiting map[string]int `json:"waiting"`
}

// Stats returns the queue's tally, kept beside the records and changed in the same
// transactions: no scan, whatever the queue's length.
func (s *Store) Stats() (Stats, error) {
	s.mu.Lock()
	t := s.tally.clone()
	s.mu.Unlock()
	st := Stats{Count: t.Count, Bytes: t.Bytes, Waiting: t.Waiting}
	for _, start := range t.Leased {
		if st.Oldest.IsZero() || start.Before(st.Oldest) {
			st.Oldest = start
		}
	}
	// The oldest spooled recording of each class heads its part of the pending index.
	m := s.heads.mark()
	err := s.db.View(func(txn *badger.Txn) error {
		for r := range classes {
			err := s.eachPending(txn, m, r, func(k []byte) (bool, error) {
				if start, err := pendingStart(k); err == nil && (st.Oldest.IsZero() || start.Before(st.Oldest)) {
					st.Oldest = start
				}
				return false, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return st, err
}

// scanStats counts the records one by one: how the tally is built when there is none.
func (s *Store) scanStats() (tally, error) {
	t := newTally()
	err := s.Each(func(r Recording) error {
		t.add(r, 1)
		return nil
	})
	return t, err
}

// Each calls fn for every recording.
func (s *Store) Each(fn func(Recording) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pRec), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r Recording
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutDoc stores one of the agent's documents (a slot's state, a fault, the config) and
// appends events to the ledger in the same transaction.
func (s *Store) PutDoc(kind, id string, v any, events ...Event) error {
	doc, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", kind, id, err)
	}
	if err := s.update(func(b *batch) error { return b.set([]byte(pDoc+kind+"/"+id), doc) }, events...); err != nil {
		return fmt.Errorf("put %s/%s: %w", kind, id, err)
	}
	return nil
}

// DeleteDoc removes a document, appending events in the same transaction.
func (s *Store) DeleteDoc(kind, id string, events ...Event) error {
	return s.update(func(b *batch) error { return b.delete([]byte(pDoc + kind + "/" + id)) }, events...)
}

// GetDoc loads a document into v; found is false when there is none.
func (s *Store) GetDoc(kind, id string, v any) (found bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(pDoc + kind + "/" + id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return it.Value(func(b []byte) error { return json.Unmarshal(b, v) })
	})
	return found, err
}

// Docs calls fn with the id and raw JSON of every document of kind.
func (s *Store) Docs(kind string, fn func(id string, raw []byte) error) error {
	prefix := []byte(pDoc + kind + "/")
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(prefix):])
			if err := it.Item().Value(func(b []byte) error { return fn(id, b) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// Offload copies one camera file into the spool and commits it: the durable half of
// taking a recording off a camera. The caller may delete the camera's copy only after it
// returns without error.
//
// If rec.ID is already held, nothing is written: src is read to its end and hashed, and
// Offload returns the held record with held true only if src's bytes are the ones the dock
// holds. Other bytes under a taken id are a *ConflictError carrying their hash (file them
// under VariantID). So whatever the id, a nil error means the dock durably holds a copy
// whose SHA-256 equals the bytes read from src in this call.
//
// Each of beforeCommit runs once the spool file is durable and before it is committed,
// with the recording as written (its hash filled): an error there (the camera's file
// changed while it was read) discards the file, and nothing is committed.
func (s *Store) Offload(ctx context.Context, rec Recording, src io.Reader, ev Event, beforeCommit ...func(Recording) error) (r Recording, held bool, err error) {
	if !s.inflight.claim(rec.ID) {
		return rec, false, fmt.Errorf("offload %s: %w", rec.ID, ErrBusy)
	}
	defer s.inflight.done(rec.ID)
	if old, err := s.Get(rec.ID); err == nil {
		sum, err := hashExactly(ctx, src, rec.Size)
		if err != nil {
			return old, false, fmt.Errorf("offload %s: compare with the dock's copy: %w", rec.ID, err)
		}
		if sum != old.SHA256 || rec.Size != old.Size {
			return old, false, fmt.Errorf("offload %s: %w", rec.ID, &ConflictError{ID: rec.ID, Held: old.SHA256, SHA256: sum, Size: rec.Size})
		}
		// A record is no copy: until central holds it (Freed), the spool file must read
		// back with the recording's hash before the camera's copy may go.
		if old.State != Freed {
			if err := s.checkSpool(ctx, old); err != nil {
				return old, false, fmt.Errorf("offload %s: the dock's copy does not hold: %w", rec.ID, err)
			}
		}
		return old, true, nil
	} else if !errors.Is(err, ErrNotFound) {
		return rec, false, fmt.Errorf("offload %s: %w", rec.ID, err)
	}
	// A spool file without a record is a copy a crash cut off before its commit; the
	// camera still holds the original (it is deleted only after the commit), so copy again.
	if err := s.spool.removeOrphan(rec.ID); err != nil {
		return rec, false, err
	}
	r, err = s.spool.Write(ctx, rec, src)
	if err != nil {
		return rec, false, err
	}
	for _, check := range beforeCommit {
		if err := check(r); err != nil {
			_ = os.Chmod(s.spool.path(rec.ID), 0o600)
			_ = s.spool.remove(rec.ID)
			return rec, false, fmt.Errorf("offload %s: %w", rec.ID, err)
		}
	}
	ev.Recording = r.ID
	if ev.Detail == "" {
		ev.Detail = "sha256 " + r.SHA256
	}
	r, err = s.Commit(r, ev)
	if err != nil {
		// The file is durable but perhaps unrecorded. Badger may have applied a commit it
		// reports failed (a sync error after the write): a record that names this file
		// keeps it; otherwise leave nothing half-done behind.
		if held, gerr := s.Get(rec.ID); gerr == nil && held.SHA256 == r.SHA256 {
			return rec, false, fmt.Errorf("offload %s: commit reported %w; the record and its spool file are kept", rec.ID, err)
		}
		_ = os.Chmod(s.spool.path(rec.ID), 0o600)
		_ = s.spool.remove(rec.ID)
		return rec, false, err
	}
	return r, false, nil
}

// checkSpool reads rec's spool copy back and compares it with the recording's hash.
func (s *Store) checkSpool(ctx context.Context, rec Recording) error {
	f, err := s.spool.open(rec)
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := hashExactly(ctx, io.NewSectionReader(f, 0, rec.Size+1), rec.Size)
	if err != nil {
		return fmt.Errorf("read back spool %s: %w", rec.ID, err)
	}
	if sum != rec.SHA256 {
		return fmt.Errorf("spool %s: %w: reads back as sha256 %s, recorded %s", rec.ID, ErrIntegrity, sum, rec.SHA256)
	}
	return nil
}

// ErrBusy means another offload of the same recording id is running (two bays with
// cameras that claim one serial): this one leaves the camera's copy alone.
var ErrBusy = errors.New("queue: an offload of this recording is already running")

// ConflictError is a camera file whose id is taken by a recording with other bytes.
type ConflictError struct {
	ID     string
	Held   string // the held recording's SHA-256
	SHA256 string // the camera file's
	Size   int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("id %s holds sha256 %s, the camera's file of %d bytes is %s", e.ID, e.Held, e.Size, e.SHA256)
}

// hashExactly reads exactly size bytes from src and returns their SHA-256; a source that
// is shorter or longer is ErrShortCopy or an error.
func hashExactly(ctx context.Context, src io.Reader, size int64) (string, error) {
	h := sha256.New()
	if n, err := copyHashed(ctx, src, io.Discard, h, size); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "", fmt.Errorf("%w: %d of %d bytes", ErrShortCopy, n, size)
		}
		return "", err
	}
	var one [1]byte
	if m, _ := src.Read(one[:]); m > 0 {
		return "", fmt.Errorf("source longer than the announced %d bytes", size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// claims is the set of recording ids being offloaded now.
type claims struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (c *claims) claim(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids[id] {
		return false
	}
	if c.ids == nil {
		c.ids = map[string]bool{}
	}
	c.ids[id] = true
	return true
}

func (c *claims) done(id string) {
	c.mu.Lock()
	delete(c.ids, id)
	c.mu.Unlock()
}

type badgerLog struct{ l *slog.Logger }

func (b badgerLog) Errorf(f string, a ...any)   { b.l.Error("badger", "msg", fmt.Sprintf(f, a...)) }
func (b badgerLog) Warningf(f string, a ...any) { b.l.Warn("badger", "msg", fmt.Sprintf(f, a...)) }
func (b badgerLog) Infof(string, ...any)        {}
func (b badgerLog) Debugf(string, ...any)       {}

// Import writes records in bulk (an index rebuilt from spool headers and central's
// receipts, or a benchmark's queue), with one ledger entry for the batch. Existing ids are
// overwritten: only for an empty or rebuilt index.
func (s *Store) Import(recs []Recording, why string) error {
	s.mu.Lock()
	t := s.tally.clone()
	err := s.db.View(func(txn *badger.Txn) error {
		for _, r := range recs {
			if old, err := getRec(txnReader{txn}, r.ID); err == nil {
				t.add(old, -1)
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
			t.add(r, 1)
		}
		return nil
	})
	if err == nil {
		err = s.importBatch(recs, t)
	}
	if err == nil {
		s.tally = t
	}
	s.landed.forget() // it may have overwritten some
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return s.Record(Event{Kind: EvInput, Detail: fmt.Sprintf("imported %d records: %s", len(recs), why)})
}

func (s *Store) importBatch(recs []Recording, t tally) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := wb.Set(recKey(r.ID), b); err != nil {
			return err
		}
		if r.State == Spooled {
			if err := wb.Set(pendingKey(r), nil); err != nil {
				return err
			}
		}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := wb.Set([]byte(kTally), b); err != nil {
		return err
	}
	err = wb.Flush()
	s.heads.reset() // after the batch is visible, or what of it is
	return err
}

// ReleaseAll returns every leased recording to the queue: at start, no transfer is running,
// so any lease is left over from before a crash. The tally names them: a restart reads no
// other record, however long the queue.
func (s *Store) ReleaseAll(why string) (int, error) {
	s.mu.Lock()
	ids := slices.Sorted(maps.Keys(s.tally.Leased))
	s.mu.Unlock()
	for _, id := range ids {
		if _, err := s.Release(id, why); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// LedgerHead returns the sequence number of the last ledger entry.
func (s *Store) LedgerHead() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}
