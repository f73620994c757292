package queue

import (
	"dock/queue/durable"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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
	// shown is what readers see of seq and tally, published under mu after each change and
	// read without it: Stats and LedgerHead never wait on a group commit's fsync.
	shown atomic.Pointer[shownState]

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
	return durable.Sync(dir)
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
	s.publish()
	s.wg.Add(2)
	go s.gcLoop()
	go s.committer()
	return s, nil
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
	s.publish()
	return nil
}

// shownState is the store's ledger sequence and tally as of a commit. It is replaced
// whole, never changed.
type shownState struct {
	seq   uint64
	tally tally
}

// publish shows readers the store's seq and tally as they are now; s.mu is held.
func (s *Store) publish() {
	s.shown.Store(&shownState{seq: s.seq, tally: s.tally.clone()})
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

func recKey(id string) []byte { return []byte(pRec + id) }

func pendingKey(r Recording) []byte {
	return append(append(pendingAt(rank(r), r.Start), '/'), r.ID...)
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

// Stats returns the queue's tally, kept beside the records and changed in the same
// transactions: no scan, whatever the queue's length.
func (s *Store) Stats() (Stats, error) {
	t := s.shown.Load().tally.clone()
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

type badgerLog struct{ l *slog.Logger }

func (b badgerLog) Errorf(f string, a ...any) { b.l.Error("badger", "msg", fmt.Sprintf(f, a...)) }

func (b badgerLog) Warningf(f string, a ...any) { b.l.Warn("badger", "msg", fmt.Sprintf(f, a...)) }

func (b badgerLog) Infof(string, ...any) {}

func (b badgerLog) Debugf(string, ...any) {}
