package central

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"dock/uplink/wire"
)

// Stored is a recording central holds, with the hash central computed itself.
type Stored struct {
	Meta   wire.RecordingMeta `json:"recording"`
	Dock   string             `json:"dock"`
	Size   int64              `json:"size"`
	SHA256 string             `json:"sha256"`
	Stored time.Time          `json:"stored"`
	Path   string             `json:"-"`
}

// Storage is where central keeps recordings: uploads in progress by dock, and verified
// recordings by the dock that sent them and their device. Everything filed is keyed by
// (dock, recording id): one dock's upload never meets, answers with or replaces another
// dock's. Several receiver instances may share one Storage and write the same upload at
// once (chunks of one stream are split between them); every method is safe for that, and
// repeats are harmless. FileStore is the filesystem implementation.
type Storage interface {
	// Filed returns the recording id that dock filed, verified, if central has it.
	Filed(dock, id string) (Stored, bool, error)
	// Lookup returns recording id as filed by any dock, for the office's tools: with
	// several docks having filed it, the earliest filing if they all filed the same bytes,
	// or an error naming the docks if not. Answers to a dock never come from Lookup.
	Lookup(id string) (Stored, bool, error)
	// Begin starts dock's upload of a recording, announced at size bytes with the dock's
	// SHA-256, or finds it begun: it reports how many contiguous bytes are already held.
	Begin(dock, transfer string, meta wire.RecordingMeta, size int64, sha256 string) (Upload, error)
	// Write stores data at off in a begun upload and reports the contiguous bytes held.
	// ErrNotBegun means there is no such upload (and no such recording verified).
	Write(dock, id string, off int64, data []byte) (Upload, error)
	// Held reports an upload in progress.
	Held(dock, id string) (Upload, bool, error)
	// Finish makes a complete upload durable and compares the SHA-256 of the bytes stored
	// with sha256 and with the one announced at Begin: it commits it as a verified
	// recording, or returns an *IncompleteError, or a *MismatchError after discarding it.
	Finish(dock, id string, size int64, sha256 string) (Stored, error)
	// List returns every verified recording, of every dock.
	List() ([]Stored, error)
}

// Upload is an upload in progress as every receiver instance sees it.
type Upload struct {
	Transfer string
	Size     int64
	Held     int64 // contiguous bytes stored from the start
}

// ErrNotBegun is a chunk for an upload nobody began.
var ErrNotBegun = errors.New("no transfer begun")

// IncompleteError is an end before every byte is held.
type IncompleteError struct{ Held, Size int64 }

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("incomplete: %d of %d bytes held", e.Held, e.Size)
}

// MismatchError is an upload whose stored bytes hash differently from the dock's claim.
type MismatchError struct {
	Size   int64
	SHA256 string // what central computed
}

func (e *MismatchError) Error() string { return "hash mismatch: central computed " + e.SHA256 }

// FileStore keeps recordings under a directory:
//
//	incoming/<dock>/<id>.part                   partial uploads
//	incoming/<dock>/<id>.state                  their shared state, locked with flock(2)
//	recordings/<dock>/<device>/<id>             verified footage, read-only
//	recordings/<dock>/<device>/<id>.json        its metadata and hash
//	recordings/<dock>/<device>/<id>.sha256      "hash  id", checkable with sha256sum -c
//	index/<dock>/<id>                           device of a verified recording
//
// Stores written before recordings were keyed by dock hold index/<id> and
// recordings/<device>/<id>: those are still found, and answered to the dock that filed them.
type FileStore struct{ Dir string }

func safe(s string) error {
	if s == "" || strings.ContainsAny(s, "/\\\x00") || s == "." || s == ".." || strings.HasPrefix(s, ".") {
		return fmt.Errorf("unsafe name %q", s)
	}
	return nil
}

func (f FileStore) partPath(dock, id string) string {
	return filepath.Join(f.Dir, "incoming", dock, id+".part")
}

// filedPath is where dock's verified recording meta is kept.
func (f FileStore) filedPath(dock string, meta wire.RecordingMeta) string {
	return filepath.Join(f.Dir, "recordings", dock, meta.Device, meta.ID)
}

func (f FileStore) indexPath(dock, id string) string {
	return filepath.Join(f.Dir, "index", dock, id)
}

// Filed implements Storage.
func (f FileStore) Filed(dock, id string) (Stored, bool, error) {
	if err := errors.Join(safe(dock), safe(id)); err != nil {
		return Stored{}, false, err
	}
	dev, err := os.ReadFile(f.indexPath(dock, id))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return f.legacy(dock, id)
	}
	if err != nil {
		return Stored{}, false, fmt.Errorf("filed %s/%s: %w", dock, id, err)
	}
	if err := safe(string(dev)); err != nil {
		return Stored{}, false, fmt.Errorf("filed %s/%s: index: %w", dock, id, err)
	}
	path := filepath.Join(f.Dir, "recordings", dock, string(dev), id)
	s, err := readStored(path)
	if err != nil {
		return Stored{}, false, fmt.Errorf("filed %s/%s: %w", dock, id, err)
	}
	if s.Dock != dock || s.Meta.ID != id {
		return Stored{}, false, fmt.Errorf("filed %s/%s: %s.json describes %s/%s", dock, id, path, s.Dock, s.Meta.ID)
	}
	return s, true, nil
}

// legacy finds a recording filed before recordings were keyed by dock (index/<id>), if
// dock is the one that filed it.
func (f FileStore) legacy(dock, id string) (Stored, bool, error) {
	s, ok, err := f.legacyAny(id)
	if err != nil || !ok || s.Dock != dock {
		return Stored{}, false, err
	}
	return s, true, nil
}

// readStored reads a verified recording's metadata beside it.
func readStored(path string) (Stored, error) {
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		return Stored{}, err
	}
	var s Stored
	if err := json.Unmarshal(b, &s); err != nil {
		return Stored{}, fmt.Errorf("%s.json: %w", path, err)
	}
	s.Path = path
	return s, nil
}

// Lookup implements Storage.
func (f FileStore) Lookup(id string) (Stored, bool, error) {
	if err := safe(id); err != nil {
		return Stored{}, false, err
	}
	docks, err := f.docks()
	if err != nil {
		return Stored{}, false, err
	}
	var found []Stored
	for _, dock := range docks {
		s, ok, err := f.Filed(dock, id)
		if err != nil {
			return Stored{}, false, err
		}
		if ok {
			found = append(found, s)
		}
	}
	if s, ok, err := f.legacyAny(id); err != nil {
		return Stored{}, false, err
	} else if ok && !slices.ContainsFunc(found, func(o Stored) bool { return o.Path == s.Path }) {
		found = append(found, s)
	}
	if len(found) == 0 {
		return Stored{}, false, nil
	}
	slices.SortFunc(found, func(a, b Stored) int { return a.Stored.Compare(b.Stored) })
	for _, o := range found[1:] {
		if o.SHA256 != found[0].SHA256 || o.Size != found[0].Size {
			var who []string
			for _, o := range found {
				who = append(who, o.Dock+" ("+o.SHA256+")")
			}
			return Stored{}, false, fmt.Errorf("lookup %s: filed with different bytes by %s", id, strings.Join(who, ", "))
		}
	}
	return found[0], true, nil
}

// legacyAny finds a recording filed before recordings were keyed by dock, whichever dock
// filed it.
func (f FileStore) legacyAny(id string) (Stored, bool, error) {
	path := filepath.Join(f.Dir, "index", id)
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		return Stored{}, false, nil
	}
	dev, err := os.ReadFile(path)
	if err != nil {
		return Stored{}, false, fmt.Errorf("filed %s: %w", id, err)
	}
	if err := safe(string(dev)); err != nil {
		return Stored{}, false, fmt.Errorf("filed %s: index: %w", id, err)
	}
	s, err := readStored(filepath.Join(f.Dir, "recordings", string(dev), id))
	if err != nil {
		return Stored{}, false, fmt.Errorf("filed %s: %w", id, err)
	}
	return s, true, nil
}

// docks lists the docks that filed anything.
func (f FileStore) docks() ([]string, error) {
	es, err := os.ReadDir(filepath.Join(f.Dir, "index"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		if e.IsDir() && safe(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// List implements Storage.
func (f FileStore) List() ([]Stored, error) {
	es, err := os.ReadDir(filepath.Join(f.Dir, "index"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Stored
	for _, e := range es {
		if isTemp(e.Name()) {
			continue
		}
		if !e.IsDir() {
			// Filed before recordings were keyed by dock.
			s, ok, err := f.legacyAny(e.Name())
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, s)
			}
			continue
		}
		dock := e.Name()
		ids, err := os.ReadDir(filepath.Join(f.Dir, "index", dock))
		if err != nil {
			return nil, err
		}
		for _, i := range ids {
			if isTemp(i.Name()) || safe(i.Name()) != nil {
				continue
			}
			s, ok, err := f.Filed(dock, i.Name())
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// isTemp is a file being written under a temporary name (or left so by a crash).
func isTemp(name string) bool { return strings.HasSuffix(name, ".tmp") }

func writeSynced(path string, b []byte) error {
	tmp := path + ".tmp"
	file, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := file.Write(b); err != nil {
		file.Close()
		return err
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return err
	}
	if err := file.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// syncPath fsyncs a file or a directory.
func syncPath(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
