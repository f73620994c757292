package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Event kinds written to the ledger.
const (
	EvDocked        = "docked"
	EvUndocked      = "undocked"
	EvOffloaded     = "offloaded"
	EvCameraFreeing = "camera-freeing" // about to delete a camera's copy
	EvCameraFree    = "camera-freed"
	EvAccess        = "footage-access"
	EvUploaded      = "uploaded"
	EvVerified      = "verified"
	EvFreed         = "freed"
	EvRejected      = "receipt-rejected"
	EvFault         = "fault"
	EvConfig        = "config"
	EvHold          = "hold"
	EvInput         = "bad-input"
	EvSlot          = "slot"
)

// Event is what happened, before it is chained.
type Event struct {
	Kind      string `json:"kind"`
	Slot      int    `json:"slot,omitempty"`
	Device    string `json:"device,omitempty"`
	Recording string `json:"recording,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// Entry is one ledger line: the event, when, its place in the chain, and the hash that
// chains it to the entry before.
type Entry struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Event
	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

// genesis is the Prev of the first entry.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// seal computes e's hash over its fields and its predecessor's hash.
func (e Entry) seal() (string, error) {
	h, _, err := e.hashed()
	return h, err
}

// hashed returns e's hash and the JSON of e, without its hash, that the hash covers.
func (e Entry) hashed() (hash string, b []byte, err error) {
	e.Hash = ""
	b, err = json.Marshal(e)
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	h.Write([]byte(e.Prev))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), b, nil
}

// sealed returns e's hash and e as stored: its JSON with that hash.
func (e Entry) sealed() (hash string, line []byte, err error) {
	hash, b, err := e.hashed()
	if err != nil {
		return "", nil, err
	}
	// The hash is the last field, empty in what was hashed: fill it in.
	const empty = `"hash":""}`
	if !bytes.HasSuffix(b, []byte(empty)) {
		e.Hash = hash
		line, err = json.Marshal(e)
		return hash, line, err
	}
	line = append(b[:len(b)-len(`""}`)], '"')
	line = append(append(line, hash...), `"}`...)
	return hash, line, nil
}

// BadEntry names the first ledger entry that breaks the chain.
type BadEntry struct {
	Seq    uint64
	Reason string
}

func (b *BadEntry) Error() string { return fmt.Sprintf("ledger entry %d: %s", b.Seq, b.Reason) }

// CheckChain verifies a run of entries in order, starting from genesis. It returns a
// *BadEntry for the first entry whose sequence, link or hash is wrong.
func CheckChain(entries []Entry) error {
	c := newChain()
	for _, e := range entries {
		if err := c.check(e); err != nil {
			return err
		}
	}
	return nil
}

// chain checks a ledger's entries one after the other, from genesis.
type chain struct {
	prev    string // the hash the next entry must chain to
	want    uint64 // its sequence number
	checked int
}

func newChain() *chain { return &chain{prev: genesis, want: 1} }

// check checks e as the next entry (see checkEntry) and moves past it.
func (c *chain) check(e Entry) error {
	if err := checkEntry(e, c.prev, c.want); err != nil {
		return err
	}
	c.prev, c.want, c.checked = e.Hash, c.want+1, c.checked+1
	return nil
}

// checkEntry checks one entry against the hash and sequence expected of it.
func checkEntry(e Entry, prev string, want uint64) error {
	if e.Seq != want {
		return &BadEntry{Seq: e.Seq, Reason: fmt.Sprintf("sequence %d, expected %d", e.Seq, want)}
	}
	if e.Prev != prev {
		return &BadEntry{Seq: e.Seq, Reason: "does not chain to the entry before"}
	}
	h, err := e.seal()
	if err != nil || h != e.Hash {
		return &BadEntry{Seq: e.Seq, Reason: "hash does not match content"}
	}
	return nil
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
	c := newChain()
	err := s.Ledger(1, c.check)
	return c.checked, err
}

// LedgerHead returns the sequence number of the last ledger entry.
func (s *Store) LedgerHead() uint64 {
	return s.shown.Load().seq
}
