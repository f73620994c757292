package central

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// InProgress is an upload in incoming/, as Incoming and Expire report it.
type InProgress struct {
	Dock    string
	ID      string
	Size    int64     // announced at begin (the part's size if its state is unreadable)
	Held    int64     // contiguous bytes held
	Touched time.Time // last begin or chunk stored
	Filing  bool      // verified, its filing interrupted: Expire files it
}

// Incoming implements Storage: it reads each upload's state as it is, without its lock.
func (f FileStore) Incoming(dock string) ([]InProgress, error) {
	if err := safe(dock); err != nil {
		return nil, err
	}
	ids, err := f.incomingIDs(dock)
	if err != nil {
		return nil, err
	}
	out := make([]InProgress, 0, len(ids))
	for _, id := range ids {
		p, err := f.peekUpload(dock, id)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// incomingIDs lists the recordings with a part or a state in incoming/<dock>/.
func (f FileStore) incomingIDs(dock string) ([]string, error) {
	es, err := os.ReadDir(filepath.Join(f.Dir, "incoming", dock))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range es {
		id, ok := strings.CutSuffix(e.Name(), ".state")
		if !ok {
			id, ok = strings.CutSuffix(e.Name(), ".part")
		}
		if ok && safe(id) == nil && !e.IsDir() {
			ids = append(ids, id)
		}
	}
	return slices.Compact(ids), nil // sorted by name: an id's .part and .state are adjacent
}

// peekUpload reads an upload's state without locking it (a save torn under it reads as
// the slot before).
func (f FileStore) peekUpload(dock, id string) (InProgress, error) {
	p := InProgress{Dock: dock, ID: id}
	if fi, err := os.Stat(f.partPath(dock, id)); err == nil {
		p.Size, p.Touched = fi.Size(), fi.ModTime()
	} else if !errors.Is(err, os.ErrNotExist) {
		return p, err
	}
	sf, err := os.Open(f.statePath(dock, id))
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	defer sf.Close()
	u := &lockedUpload{f: sf}
	if err := u.load(); err != nil {
		return p, fmt.Errorf("upload state %s/%s: %w", dock, id, err)
	}
	if fi, err := sf.Stat(); err == nil && fi.ModTime().After(p.Touched) {
		p.Touched = fi.ModTime()
	}
	if u.st.Hash != nil {
		p.Size, p.Held, p.Filing = u.st.Size, u.st.Held, u.st.Filing != nil
	}
	return p, nil
}

// Expire implements Storage: every upload not touched since before is removed, its part
// and its state, under its lock; one verified and interrupted while filing is filed
// instead (it is central's to keep), and reported with Filing set.
func (f FileStore) Expire(before time.Time) ([]InProgress, error) {
	es, err := os.ReadDir(filepath.Join(f.Dir, "incoming"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []InProgress
	var errs []error
	for _, e := range es {
		dock := e.Name()
		if !e.IsDir() || safe(dock) != nil {
			continue
		}
		ids, err := f.incomingIDs(dock)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range ids {
			if p, err := f.peekUpload(dock, id); err != nil || !p.Touched.Before(before) {
				if err != nil {
					errs = append(errs, err)
				}
				continue
			}
			p, expired, err := f.expire(dock, id, before)
			if err != nil {
				errs = append(errs, fmt.Errorf("expire %s/%s: %w", dock, id, err))
			}
			if expired {
				out = append(out, p)
			}
		}
	}
	return out, errors.Join(errs...)
}

// expire removes (or files) one upload if, under its lock, it is still untouched since before.
func (f FileStore) expire(dock, id string, before time.Time) (InProgress, bool, error) {
	u, err := f.lock(dock, id, true) // a part left without its state gets one, and goes
	if err != nil {
		return InProgress{}, false, err
	}
	defer u.close()
	p := InProgress{Dock: dock, ID: id}
	if fi, err := os.Stat(u.part); err == nil {
		p.Size, p.Touched = fi.Size(), fi.ModTime()
	}
	if u.st.Hash != nil {
		fi, err := u.f.Stat()
		if err != nil {
			return p, false, err
		}
		p.Size, p.Held, p.Filing = u.st.Size, u.st.Held, u.st.Filing != nil
		p.Touched = latest(p.Touched, fi.ModTime())
	}
	if !p.Touched.Before(before) {
		return p, false, nil // touched while this waited for the lock
	}
	if p.Filing {
		if _, ok, ferr := f.Filed(dock, id); ferr == nil && ok {
			// Filed already; a crash inside the cleanup after filing left the state
			// behind (its part may be gone): discard what is left.
			return p, true, u.discard()
		}
		_, err := f.file(dock, u)
		return p, err == nil, err
	}
	return p, true, u.discard()
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
