package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// update applies fn and appends events to the ledger in the same transaction, so a state
// change and its ledger entry commit together or not at all. It returns once that
// transaction is durable.
//
// Updates are group-committed: one goroutine, the committer, applies every update that is
// waiting, in arrival order, to one batch and commits it as one synced transaction, so a
// shift change's commits share fsyncs. Each update sees the writes of those before it; one
// that fails is dropped and the rest applied again without it, so a failure changes nothing.
func (s *Store) update(fn func(b *batch) error, events ...Event) error {
	w := &write{fn: fn, events: events, done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.stop:
		return errClosed
	}
	select {
	case err := <-w.done:
		return err
	case <-s.idle:
		// The committer has ended; it answered every update it took.
		select {
		case err := <-w.done:
			return err
		default:
			return errClosed
		}
	}
}

var errClosed = errors.New("queue: closed")

// write is one update waiting for the committer.
type write struct {
	fn     func(b *batch) error
	events []Event
	done   chan error
}

// maxGroup bounds the updates in one batch.
const maxGroup = 64

// committer applies waiting updates in groups until the store closes.
func (s *Store) committer() {
	defer s.wg.Done()
	defer close(s.idle)
	var carried []*write // updates a full batch left for the next
	for {
		group := carried
		if len(group) == 0 {
			select {
			case <-s.stop:
				// Commit what was handed over before the close.
				for {
					select {
					case w := <-s.writes:
						for group := []*write{w}; len(group) > 0; {
							group = s.commitGroup(group)
						}
					default:
						return
					}
				}
			case w := <-s.writes:
				group = append(group, w)
			}
			// Callers answered by the last commit are waking: let them hand in their
			// next update before this group closes.
			runtime.Gosched()
		}
	more:
		for len(group) < maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break more
			}
		}
		carried = s.commitGroup(group)
	}
}

// commitGroup commits group's updates, in order, in one transaction and answers each. The
// updates that did not fit in the transaction are returned, to start the next one.
func (s *Store) commitGroup(group []*write) (rest []*write) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(group) > 0 {
		b := &batch{txn: s.db.NewTransaction(true), base: &s.tally, landed: &s.landed, recs: map[string]*Recording{}}
		seq, head := s.seq, s.head
		failed, err := -1, error(nil)
		for i, w := range group {
			if w.fn != nil {
				err = w.fn(b)
			}
			if err == nil {
				seq, head, err = appendLedger(b, s.now, seq, head, w.events)
			}
			if err != nil {
				failed = i
				break
			}
		}
		if failed < 0 && b.draft != nil {
			if err = b.setTally(); err != nil {
				failed = len(group) - 1
			}
		}
		if failed >= 0 {
			b.txn.Discard()
			if errors.Is(err, badger.ErrTxnTooBig) && failed > 0 {
				// Close the transaction before the update that did not fit.
				rest = slices.Concat(group[failed:], rest)
				group = group[:failed]
			} else {
				// Drop the update that failed and apply the others again without it.
				group[failed].done <- err
				group = slices.Delete(group, failed, failed+1)
			}
			continue
		}
		s.heads.adding(b.added)
		err = s.commit(b.txn)
		b.txn.Discard()
		if err == nil {
			s.seq, s.head = seq, head
			s.tally = *b.tally()
			s.landed.committed(b.recs)
			s.heads.added(b.added)
		} else {
			s.reloadAfterFailedCommit(err)
		}
		s.publish()
		for _, w := range group {
			w.done <- err
		}
		break
	}
	return rest
}

// batch is one group's transaction as its updates see it, with what they make of the tally
// and the pending index, and the records they wrote, decoded.
type batch struct {
	txn    *badger.Txn
	base   *tally   // the tally before this batch
	draft  *tally   // the tally after it, once an update changed it
	added  [][]byte // pending keys it sets
	landed *landed
	recs   map[string]*Recording // the records it wrote; nil for one it deleted
}

// reader is what getRec reads: a Badger transaction or a batch.
type reader interface {
	value(key []byte, fn func(v []byte) error) error // badger.ErrKeyNotFound when absent
}

// txnReader reads a Badger transaction.
type txnReader struct{ *badger.Txn }

func (t txnReader) value(key []byte, fn func([]byte) error) error {
	it, err := t.Get(key)
	if err != nil {
		return err
	}
	return it.Value(fn)
}

func (b *batch) value(key []byte, fn func([]byte) error) error {
	return txnReader{b.txn}.value(key, fn)
}

// set writes value under key; the batch keeps value, which must not change afterwards.
func (b *batch) set(key, value []byte) error { return b.txn.Set(key, value) }

func (b *batch) delete(key []byte) error {
	if id, ok := bytes.CutPrefix(key, []byte(pRec)); ok {
		b.recs[string(id)] = nil
	}
	return b.txn.Delete(key)
}

// record returns recording id without reading Badger when the batch wrote it or it is
// among the landed records; ok is false otherwise.
func (b *batch) record(id string) (r Recording, ok bool, err error) {
	if w, written := b.recs[id]; written {
		if w == nil {
			return r, true, fmt.Errorf("recording %s: %w", id, ErrNotFound)
		}
		return *w, true, nil
	}
	r, ok, _ = b.landed.get(id)
	return r, ok, nil
}

// putRec writes r.
func (b *batch) putRec(r Recording) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := b.set(recKey(r.ID), v); err != nil {
		return err
	}
	b.recs[r.ID] = &r
	return nil
}

// changed records that a record went from old to new (nil: none).
func (b *batch) changed(old, new *Recording) {
	if b.draft == nil {
		d := b.base.clone()
		b.draft = &d
	}
	if old != nil {
		b.draft.add(*old, -1)
	}
	if new != nil {
		b.draft.add(*new, 1)
	}
}

// setPending adds r to the pending index.
func (b *batch) setPending(r Recording) error {
	k := pendingKey(r)
	b.added = append(b.added, k)
	return b.set(k, nil)
}

// setTally stores the batch's tally.
func (b *batch) setTally() error {
	v, err := json.Marshal(b.draft)
	if err != nil {
		return err
	}
	return b.set([]byte(kTally), v)
}

// tally is the tally after the batch.
func (b *batch) tally() *tally {
	if b.draft != nil {
		return b.draft
	}
	return b.base
}

// landed holds records as they were last committed, decoded, for the committer to find
// without a read through Badger's levels and a JSON decode: a lease reads the record its
// caller has just read, a receipt, a release or a free one written shortly before.
//
// It never holds a record older than the last commit of it: the committer puts every
// record it commits, before answering the update, and a reader puts what it read only if
// no commit has landed since it opened its snapshot (gen counts them).
type landed struct {
	mu   sync.Mutex
	gen  uint64
	recs map[string]Recording
}

// maxLanded bounds the records kept; past it they are all dropped.
const maxLanded = 4096

// get returns the record kept for id, if any, and the generation a reader about to open a
// snapshot passes to keep.
func (l *landed) get(id string) (r Recording, ok bool, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok = l.recs[id]
	return r, ok, l.gen
}

// keep puts r, read from a snapshot opened after get returned gen.
func (l *landed) keep(gen uint64, r Recording) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen == l.gen {
		l.put(r.ID, &r)
	}
}

// committed puts the records a commit wrote (nil: deleted), once it is visible.
func (l *landed) committed(recs map[string]*Recording) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	for id, r := range recs {
		l.put(id, r)
	}
}

func (l *landed) put(id string, r *Recording) {
	if r == nil {
		delete(l.recs, id)
		return
	}
	if _, kept := l.recs[id]; l.recs == nil || !kept && len(l.recs) >= maxLanded {
		l.recs = make(map[string]Recording, maxLanded)
	}
	l.recs[id] = *r
}

// forget drops every record kept, after writes that bypassed the committer.
func (l *landed) forget() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	l.recs = nil
}

// reloadAfterFailedCommit takes the ledger head, the tally and the records from what
// Badger shows after a commit it reported failed: it may have applied the writes before
// the sync that failed, and the next commit must then neither reuse the ledger's sequence
// numbers (overwriting entries) nor count from a tally without them. s.mu is held.
func (s *Store) reloadAfterFailedCommit(cause error) {
	s.landed.forget()
	s.heads.reset()
	err := s.loadHead()
	if err == nil {
		err = s.db.View(func(txn *badger.Txn) error {
			it, err := txn.Get([]byte(kTally))
			if err != nil {
				return err
			}
			t := newTally()
			if err := it.Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				return err
			}
			s.tally = t.clone()
			return nil
		})
	}
	if err != nil {
		s.log.Error("queue: state after a failed commit not reloaded", "commit_err", cause, "err", err)
		return
	}
	s.log.Error("queue: commit failed; ledger head and tally reloaded from the store", "err", cause, "seq", s.seq)
}
