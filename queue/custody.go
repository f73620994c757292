package queue

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	badger "github.com/dgraph-io/badger/v4"
)

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

// PlaceHold records a hold central placed on recording id for reason, ordered by by: the
// dock's copy is then kept after central's receipt until central releases the hold. A
// recording already freed (its only copies at central) gets the ledger entry and nothing
// else; a hold placed again replaces the reason and undoes an earlier release.
func (s *Store) PlaceHold(id, reason, by string) (Recording, error) {
	var out Recording
	var freed bool
	err := s.update(func(b *batch) error {
		r, err := getRec(b, id)
		if err != nil {
			return err
		}
		out = r
		if r.State == Freed {
			freed = true
			return nil
		}
		r.Hold, r.Released = reason, false
		out = r
		return b.putRec(r)
	}, Event{Kind: EvHold, Recording: id, Detail: fmt.Sprintf("hold %q placed by central, ordered by %q", reason, by)})
	if err == nil && freed {
		s.log.Info("queue: hold placed on a recording whose dock copy was already freed after central's receipt", "recording", id)
	}
	return out, err
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
	// Checked again in the commit: a hold placed since the read above keeps the copy.
	stillFreeable := func(r *Recording) error {
		if !r.Freeable() {
			return fmt.Errorf("free %s: not freeable (hold %q placed meanwhile)", id, r.Hold)
		}
		return nil
	}
	if _, err := s.transition(id, StepFree, stillFreeable, Event{Kind: EvFreed, Device: r.Device, Recording: id, Detail: "spool copy deleted after verified receipt"}); err != nil {
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

// ReleaseAll returns every leased recording to the queue: at start, no transfer is running,
// so any lease is left over from before a crash. The tally names them: a restart reads no
// other record, however long the queue.
func (s *Store) ReleaseAll(why string) (int, error) {
	ids := slices.Sorted(maps.Keys(s.shown.Load().tally.Leased))
	for _, id := range ids {
		if _, err := s.Release(id, why); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
