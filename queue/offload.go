package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

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
