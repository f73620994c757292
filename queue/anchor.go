package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Anchor is the head of the dock's ledger that central acknowledged holding (a signed
// wire.LedgerAckMsg): the entry at Seq must have Hash. The chain alone is plain SHA-256
// that anyone with the disk can recompute after a rewrite; the anchor, held by central too,
// pins every entry up to Seq.
type Anchor struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time,omitzero"` // when the dock took it
}

// The anchor is the document ledger/anchor in the store.
const (
	anchorKind = "ledger"
	anchorID   = "anchor"
)

// Anchor returns the last anchor kept; found is false if central never acknowledged one.
func (s *Store) Anchor() (a Anchor, found bool, err error) {
	found, err = s.GetDoc(anchorKind, anchorID, &a)
	return a, found, err
}

// SetAnchor keeps a as the anchor if it is past the one kept (an older acknowledgement,
// late or replayed, changes nothing) and reports whether it did.
func (s *Store) SetAnchor(a Anchor) (bool, error) {
	anchorMu.Lock()
	defer anchorMu.Unlock()
	old, found, err := s.Anchor()
	if err != nil {
		return false, err
	}
	if found && a.Seq <= old.Seq {
		return false, nil
	}
	return true, s.PutDoc(anchorKind, anchorID, a)
}

// VerifyAgainst checks the whole chain (VerifyLedger) and then that the entry at a.Seq
// has a.Hash: a ledger rewritten up to the anchor fails here even if the chain was
// recomputed. A failure is a *BadEntry naming the entry (a.Seq for the anchor's).
// A zero anchor checks the chain only.
func (s *Store) VerifyAgainst(a Anchor) (int, error) {
	n, err := s.VerifyLedger()
	if err != nil || a.Seq == 0 {
		return n, err
	}
	found := false
	err = s.Ledger(a.Seq, func(e Entry) error {
		found = e.Seq == a.Seq
		if found && e.Hash != a.Hash {
			return &BadEntry{Seq: e.Seq, Reason: fmt.Sprintf("hash %.16s… is not the %.16s… central acknowledged (anchor): rewritten", e.Hash, a.Hash)}
		}
		return errAnchorSeen
	})
	if errors.Is(err, errAnchorSeen) {
		err = nil
	}
	if err == nil && !found {
		err = &BadEntry{Seq: a.Seq, Reason: fmt.Sprintf("missing, but central acknowledged it (anchor): the ledger ends at %d", n)}
	}
	return n, err
}

// anchorMu makes SetAnchor's read and write one step.
var anchorMu sync.Mutex

var errAnchorSeen = errors.New("anchor entry seen")

// LedgerBatch returns the stored entries from seq from on, as stored (the JSON their
// hash chains), at most maxEntries of them and at most maxBytes of JSON together, and the
// seq of the last. One entry larger than maxBytes goes alone. Nothing: last is from-1.
func (s *Store) LedgerBatch(from uint64, maxEntries, maxBytes int) (raw [][]byte, last uint64, err error) {
	from = max(from, 1)
	last = from - 1
	n := 0
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pLedger), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(ledgerKey(from)); it.Valid() && len(raw) < maxEntries; it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("ledger entry %x: %w", it.Item().Key(), err)
			}
			if len(raw) > 0 && n+len(v) > maxBytes {
				break
			}
			raw, n = append(raw, v), n+len(v)
			last = binary.BigEndian.Uint64(it.Item().Key()[len(pLedger):])
		}
		return nil
	})
	return raw, last, err
}
