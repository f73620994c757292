package central

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"dock/uplink/wire"
)

// LedgerHead is the last entry of a dock's ledger that central holds chained: every batch
// the dock exports must go on from it (issue #14 finding 7). Central's copy is what a
// rewrite of the dock's disk cannot reach.
type LedgerHead struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"` // when central took it
	// Start is the first entry central chained for the dock (1: all of it); 0 in heads
	// kept before central recorded it.
	Start uint64 `json:"start,omitempty"`
}

// LedgerHeads is a Storage that keeps each dock's ledger head (FileStore does). With a
// Storage that does not, central checks and acknowledges no ledger.
type LedgerHeads interface {
	// LedgerHead returns the head held for dock; found is false before its first batch.
	LedgerHead(dock string) (h LedgerHead, found bool, err error)
	// PutLedgerHead replaces dock's head, durably and whole (a crash leaves the old or
	// the new one).
	PutLedgerHead(dock string, h LedgerHead) error
}

// ledgerHeadPath is ledger/<dock>.head under the store.
func (f FileStore) ledgerHeadPath(dock string) string {
	return filepath.Join(f.Dir, "ledger", dock+".head")
}

// LedgerHead implements LedgerHeads.
func (f FileStore) LedgerHead(dock string) (LedgerHead, bool, error) {
	var h LedgerHead
	if err := safe(dock); err != nil {
		return h, false, err
	}
	b, err := os.ReadFile(f.ledgerHeadPath(dock))
	if errors.Is(err, os.ErrNotExist) {
		return h, false, nil
	}
	if err != nil {
		return h, false, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, false, fmt.Errorf("ledger head of %s: %w", dock, err)
	}
	return h, true, nil
}

// PutLedgerHead implements LedgerHeads: the head is written and fsynced under a temporary
// name, renamed over the old one, and the directory fsynced.
func (f FileStore) PutLedgerHead(dock string, h LedgerHead) error {
	if err := safe(dock); err != nil {
		return err
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return f.replaceSynced(f.ledgerHeadPath(dock), b)
}

// ledgerGenesis is the prev of a dock's first ledger entry (queue.genesis).
const ledgerGenesis = "0000000000000000000000000000000000000000000000000000000000000000"

// ledgerLink is what central reads of an exported entry to chain it.
type ledgerLink struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

// entryHash recomputes an exported entry's hash as the dock did (queue.Entry.hashed):
// SHA-256 over prev and the entry's JSON with its hash, the last field, empty. The dock
// exports each entry as stored, so the bytes are those it hashed.
func entryHash(raw []byte, e ledgerLink) (string, bool) {
	suffix := []byte(`"hash":"` + e.Hash + `"}`)
	if !bytes.HasSuffix(raw, suffix) {
		return "", false
	}
	h := sha256.New()
	h.Write([]byte(e.Prev))
	h.Write(raw[:len(raw)-len(suffix)])
	h.Write([]byte(`"hash":""}`))
	return hex.EncodeToString(h.Sum(nil)), true
}

// checkLedger checks a batch of dock's exported entries against the chain central holds
// for it and returns the acknowledgement to send: each entry must have the next seq, the
// previous entry's hash as prev, and a hash matching its content. Entries central already
// holds (a repeat) are skipped, the one at its head must have its hash. The first batch
// central ever sees for a dock starts its chain (at seq 1 from the genesis, or wherever it
// starts). At the first entry that does not chain, central keeps the head it holds (with
// the entries before that one), logs a ledger break at Error and answers with the error.
// ok is false when the store keeps no heads: nothing is acknowledged.
func (r *Receiver) checkLedger(dock string, entries []json.RawMessage) (ack wire.LedgerAckMsg, ok bool) {
	heads, ok := r.o.Store.(LedgerHeads)
	if !ok {
		return ack, false
	}
	head, found, err := heads.LedgerHead(dock)
	if err != nil {
		r.log.Error("central: reading the dock's ledger head", "dock", dock, "err", err)
		return wire.LedgerAckMsg{Error: "central failed to read its ledger head: " + err.Error()}, true
	}
	held, moved := head, false
	var broke, kept error
	for _, raw := range entries {
		var e ledgerLink
		if err := json.Unmarshal(raw, &e); err != nil || e.Seq == 0 {
			broke = fmt.Errorf("not a ledger entry after %d: %v", head.Seq, err)
			break
		}
		if found && e.Seq <= head.Seq {
			if e.Seq == head.Seq && e.Hash != head.Hash {
				broke = fmt.Errorf("entry %d has hash %.16s…, central holds %.16s… for it: rewritten", e.Seq, e.Hash, head.Hash)
				break
			}
			continue // held already: a repeat
		}
		switch {
		case found && e.Seq != head.Seq+1:
			broke = fmt.Errorf("entry %d follows %d: a gap, entry %d missing", e.Seq, head.Seq, head.Seq+1)
		case found && e.Prev != head.Hash:
			broke = fmt.Errorf("entry %d does not chain to entry %d central holds (prev %.16s…, held hash %.16s…): rewritten", e.Seq, head.Seq, e.Prev, head.Hash)
		case !found && e.Seq == 1 && e.Prev != ledgerGenesis:
			broke = fmt.Errorf("entry 1 does not start from the genesis")
		}
		if broke == nil {
			if h, ok := entryHash(raw, e); !ok || h != e.Hash {
				broke = fmt.Errorf("entry %d: hash does not match its content", e.Seq)
			}
		}
		if broke != nil {
			break
		}
		start := head.Start
		if !found {
			r.log.Info("central: first ledger batch of the dock: its chain starts here", "dock", dock, "seq", e.Seq)
			start = e.Seq
		}
		if err := r.attest(dock, raw, e.Seq, start); err != nil {
			r.log.Error("central: keeping an attestation", "dock", dock, "seq", e.Seq, "err", err)
			kept = err
			break
		}
		head, found, moved = LedgerHead{Seq: e.Seq, Hash: e.Hash, Start: start}, true, true
	}
	if moved {
		head.Time = time.Now().UTC()
		if err := heads.PutLedgerHead(dock, head); err != nil {
			r.log.Error("central: storing the dock's ledger head", "dock", dock, "seq", head.Seq, "err", err)
			return wire.LedgerAckMsg{HeadSeq: held.Seq, HeadHash: held.Hash, Error: "central failed to store its ledger head: " + err.Error()}, true
		}
	}
	ack = wire.LedgerAckMsg{HeadSeq: head.Seq, HeadHash: head.Hash}
	if kept != nil {
		ack.Error = "central failed to store an attestation: " + kept.Error()
	}
	if broke != nil {
		ack.Error = "ledger break: " + broke.Error()
		r.log.Error("central: ledger break: the dock's ledger does not chain to what central holds", "dock", dock,
			"held_seq", head.Seq, "held_hash", head.Hash, "err", broke)
		// One alert per break point: the dock exports the same batch again and again.
		r.raise(dock, AlertLedgerBreak, fmt.Sprint(head.Seq), "",
			fmt.Sprintf("the dock's ledger does not chain on to entry %d that central holds: %v", head.Seq, broke))
	}
	return ack, true
}

// ledgerAck checks a batch (checkLedger) and publishes central's sealed acknowledgement.
func (r *Receiver) ledgerAck(ctx context.Context, dock string, entries []json.RawMessage) error {
	ack, ok := r.checkLedger(dock, entries)
	r.observe(dock, "ledger", func(o Observer) error { return o.DockLedger(dock, entries, ack) })
	if !ok || r.conn == nil {
		return nil
	}
	return r.publish(ctx, dock, wire.TopicLedgerAck, ack)
}
