package central

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"dock/queue/durable"
	"dock/queue/record"
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
	// For a recording the dock already filed it returns a *FiledError carrying the record.
	Begin(dock, transfer string, meta wire.RecordingMeta, size int64, sha256 string) (Upload, error)
	// Write stores data at off in a begun upload and reports the contiguous bytes held.
	// ErrNotBegun means there is no such upload (and no such recording verified).
	Write(dock, id string, off int64, data []byte) (Upload, error)
	// Held reports an upload in progress.
	Held(dock, id string) (Upload, bool, error)
	// Finish makes a complete upload durable and compares the SHA-256 of the bytes stored
	// with sha256 and with the one announced at Begin: it commits it as a verified
	// recording, or returns an *IncompleteError, or a *MismatchError after discarding it.
	// It is idempotent: a repeat, after a crash at any point too, returns the same record;
	// one announcing other bytes than the dock filed gets a *FiledError with Other set, and
	// what was filed is never replaced.
	Finish(dock, id string, size int64, sha256 string) (Stored, error)
	// List returns every verified recording, of every dock.
	List() ([]Stored, error)
	// Incoming lists dock's uploads in progress, for the receiver's per-dock Limits.
	Incoming(dock string) ([]InProgress, error)
	// Expire removes every upload in progress untouched (no begin, no chunk stored) since
	// before, its part and its state, and reports them. One verified and interrupted while
	// filing is filed instead, never removed.
	Expire(before time.Time) ([]InProgress, error)
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

// FiledError is a begin or an end of a recording its dock already filed, carrying what was
// filed: central answers with its receipt. Other reports that the message announced other
// bytes than those filed: they are refused, and what was filed stays as it is.
type FiledError struct {
	Stored Stored
	Other  bool
}

func (e *FiledError) Error() string {
	if e.Other {
		return fmt.Sprintf("%s already filed with other bytes (%d, sha256 %s): refused", e.Stored.Meta.ID, e.Stored.Size, e.Stored.SHA256)
	}
	return fmt.Sprintf("%s already filed", e.Stored.Meta.ID)
}

// filedAs is the answer to a begin or end of size bytes with hash sum for a recording
// filed as s: nil if they are the bytes filed, a *FiledError refusing them if not.
func filedAs(s Stored, size int64, sum string) error {
	if s.Size == size && s.SHA256 == sum {
		return nil
	}
	return &FiledError{Stored: s, Other: true}
}

// FileStore keeps recordings under a directory:
//
//	incoming/<dock>/<id>.part                   partial uploads
//	incoming/<dock>/<id>.state                  their shared state, locked with flock(2)
//	recordings/<dock>/<device>/<id>             verified footage, read-only
//	recordings/<dock>/<device>/<id>.json        its metadata and hash
//	recordings/<dock>/<device>/<id>.sha256      "hash  id", checkable with sha256sum -c
//	index/<dock>/<id>                           device of a verified recording
//	.<name>.tmp                                 a file being written, or left so by a crash
//
// A recording is filed once its index entry exists: the footage (the part linked to its
// place), its metadata and checksum are durable before it, nothing filed is ever replaced,
// and a crash at any step is completed by the next begin or end of it (see FileStore.file).
// Instances sharing a FileStore must run on one machine (see bootID).
//
// Stores written before recordings were keyed by dock hold index/<id> and
// recordings/<device>/<id>: those are still found, and answered to the dock that filed them.
type FileStore struct{ Dir string }

// maxIDLen is the longest dock, device or recording id central takes.
const maxIDLen = record.MaxIDLen

// safe accepts a dock, device or recording id central may use as a file name and write in
// a .sha256 line ("hash  id", checked by sha256sum -c): what a dock can name, the dock's
// own rule (record.CheckID).
var safe = record.CheckID

// quoteShort quotes s for a message, cut short past maxIDLen bytes.
var quoteShort = record.QuoteShort

func (f FileStore) partPath(dock, id string) string {
	return filepath.Join(f.Dir, "incoming", dock, id+".part")
}

// filedPath is where dock's verified recording is filed.
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

// tmpPath is the temporary name a file is written under before it takes path's name: a
// dot name, which no recording or dock id can be (safe), so nothing reads it as filed.
func tmpPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
}

// isTemp is a file being written under a temporary name, or left so by a crash.
func isTemp(name string) bool { return strings.HasPrefix(name, ".") }

// writeFileSynced creates path (with flag added to O_WRONLY|O_CREATE), writes b and fsyncs
// it; the caller makes the name durable (rename or link, then the directory's fsync).
func writeFileSynced(path string, b []byte, flag int, perm os.FileMode) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, perm)
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
	return file.Close()
}

// writeNew gives path the content b, durably, never replacing what is there: b is written
// and fsynced under a temporary name, then linked to path (link(2) fails on an existing
// name). A path that already holds exactly b (a repeat after a crash) is left as it is; one
// that holds anything else is an error. The caller fsyncs the directory.
func writeNew(path string, b []byte) error {
	tmp := tmpPath(path)
	// A crash may have left the temporary, read-only: a new one, not that one rewritten.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := writeFileSynced(tmp, b, os.O_EXCL, 0o440); err != nil {
		return err
	}
	crashAt("temporary written: " + filepath.Base(path))
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		have, rerr := os.ReadFile(path)
		if rerr != nil {
			return fmt.Errorf("%s exists: %w", path, rerr)
		}
		if !bytes.Equal(have, b) {
			return fmt.Errorf("%s exists with other content: refusing to replace it", path)
		}
	} else if err != nil {
		return err
	}
	return os.Remove(tmp)
}

// mkdirSynced makes dir and its parents, and fsyncs dir and every directory above it up to
// and including base, so that dir's entry survives a power cut along with what is put in
// it (whichever process created it, and even if it crashed before syncing it).
func mkdirSynced(base, dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := syncPath(d); err != nil {
			return fmt.Errorf("fsync %s: %w", d, err)
		}
		if d == base || d == filepath.Dir(d) || !strings.HasPrefix(d, base) {
			return nil
		}
	}
}

// syncPath fsyncs a file or a directory (durable.Sync).
var syncPath = durable.Sync
