package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
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
	prev, want := genesis, uint64(1)
	for _, e := range entries {
		if err := checkEntry(e, prev, want); err != nil {
			return err
		}
		prev, want = e.Hash, want+1
	}
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
