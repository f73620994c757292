package queue

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The pending index (p/<rank><start>/<id>) is a queue kept in an LSM tree: every lease
// deletes the key at its head, and Badger keeps each deleted key until a compaction reaches
// the level holding the original, which over a million recordings can be weeks. A reader
// starting from the index's beginning would step over every one of them (measured: lease +
// receipt fell from 700 to 180 per second after 20,000 uploads, and stayed there once the
// queue had drained). heads remembers, per class, a key at or before the class's first
// pending key, so that readers start there. A read racing the commit of an earlier key may
// start past it, that once: the key is never lost from the index, and the next read after
// the commit starts at or before it (TestPendingHeadsUnderConcurrentArrivals).

// classes is the number of ranks in the pending index: holds, evidence, patrol.
const classes = 3

// heads holds, per class, a key no pending key of that class sorts before.
type heads struct {
	mu   sync.Mutex
	gen  uint64          // counts the keys added since the store opened
	from [classes][]byte // nil: the class's start
}

// headMark is what a reader saw of heads before opening its snapshot.
type headMark struct {
	gen  uint64
	from [classes][]byte
}

// mark returns the heads as they stand; call it before opening the snapshot to read.
func (h *heads) mark() headMark {
	h.mu.Lock()
	defer h.mu.Unlock()
	return headMark{gen: h.gen, from: h.from}
}

// adding lowers the heads for pending keys a transaction sets, before it commits, so that
// a reader whose snapshot holds them starts at or before them.
func (h *heads) adding(keys [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lower(keys)
}

// added lowers the heads again once that transaction is visible and moves gen, so that a
// reader whose snapshot lacked the keys does not raise a head past them.
func (h *heads) added(keys [][]byte) {
	if len(keys) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	h.lower(keys)
}

func (h *heads) lower(keys [][]byte) {
	for _, k := range keys {
		r := rankOf(k)
		if h.from[r] != nil && bytes.Compare(k, h.from[r]) < 0 {
			h.from[r] = k
		}
	}
}

// reset forgets every head (after a write that did not go through the committer).
func (h *heads) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	h.from = [classes][]byte{}
}

// found raises class r's head to key, the first pending key a reader's snapshot holds at
// or after m's head (or the class's end when it holds none), unless a key was added since m.
func (h *heads) found(m headMark, r int, key []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen == m.gen && (h.from[r] == nil || bytes.Compare(key, h.from[r]) > 0) {
		h.from[r] = key
	}
}

// classPrefix is the part of the pending index holding class r.
func classPrefix(r int) []byte { return []byte{pPending[0], pPending[1], byte('0' + r)} }

// rankOf returns the class of a pending key.
func rankOf(key []byte) int { return int(key[len(pPending)] - '0') }

// pendingAt is where class r's recordings that started at t begin in the pending index.
func pendingAt(r int, t time.Time) []byte {
	return fmt.Appendf(classPrefix(r), "%020d", t.UnixNano())
}

// pendingStart and pendingID read a pending key's start time and recording id.
func pendingStart(key []byte) (time.Time, error) {
	nanos, err := strconv.ParseInt(string(key[len(pPending)+1:len(pPending)+1+20]), 10, 64)
	return time.Unix(0, nanos).UTC(), err
}

func pendingID(key []byte) string { return string(key[len(pPending)+1+20+1:]) }

// eachPending calls fn with the pending keys of class r in order, starting from the class's
// head in m, until fn returns false, and moves that head to the first key it met.
func (s *Store) eachPending(txn *badger.Txn, m headMark, r int, fn func(key []byte) (more bool, err error)) error {
	prefix := classPrefix(r)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	start := m.from[r]
	if start == nil {
		start = prefix
	}
	it.Seek(start)
	if !it.Valid() {
		s.heads.found(m, r, append(prefix, 0xff))
		return nil
	}
	s.heads.found(m, r, it.Item().KeyCopy(nil))
	for ; it.Valid(); it.Next() {
		more, err := fn(it.Item().Key())
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// SpooledBetween calls fn for every recording waiting to upload that started in [from, to),
// in upload order, reading only that span of each class's part of the pending index (a spot
// check of one day reads that day, not the queue).
func (s *Store) SpooledBetween(from, to time.Time, fn func(Recording) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		for r := range classes {
			prefix, lo, hi := classPrefix(r), pendingAt(r, from), pendingAt(r, to)
			err := func() error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
				defer it.Close()
				for it.Seek(lo); it.Valid() && bytes.Compare(it.Item().Key(), hi) < 0; it.Next() {
					rec, err := getRec(txnReader{txn}, pendingID(it.Item().Key()))
					if err != nil {
						return err
					}
					if err := fn(rec); err != nil {
						return err
					}
				}
				return nil
			}()
			if err != nil {
				return err
			}
		}
		return nil
	})
}
