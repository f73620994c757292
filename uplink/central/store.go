package central

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
// recordings by device. Several receiver instances may share one Storage and write the same
// upload at once (chunks of one stream are split between them); every method is safe for
// that, and repeats are harmless. FileStore is the filesystem implementation.
type Storage interface {
	// Lookup returns the verified recording id, if central has it.
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
	// List returns every verified recording.
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
//	incoming/<dock>/<id>.part          partial uploads
//	incoming/<dock>/<id>.state         their shared state, locked with flock(2)
//	recordings/<device>/<id>            verified footage, read-only
//	recordings/<device>/<id>.json       its metadata and hash
//	recordings/<device>/<id>.sha256     "hash  id", checkable with sha256sum -c
//	index/<id>                          device of a verified recording (lookup by id)
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

// Lookup implements Storage.
func (f FileStore) Lookup(id string) (Stored, bool, error) {
	if err := safe(id); err != nil {
		return Stored{}, false, err
	}
	dev, err := os.ReadFile(filepath.Join(f.Dir, "index", id))
	if errors.Is(err, os.ErrNotExist) {
		return Stored{}, false, nil
	}
	if err != nil {
		return Stored{}, false, err
	}
	b, err := os.ReadFile(filepath.Join(f.Dir, "recordings", string(dev), id+".json"))
	if err != nil {
		return Stored{}, false, fmt.Errorf("lookup %s: %w", id, err)
	}
	var s Stored
	if err := json.Unmarshal(b, &s); err != nil {
		return Stored{}, false, fmt.Errorf("lookup %s: %w", id, err)
	}
	s.Path = filepath.Join(f.Dir, "recordings", string(dev), id)
	return s, true, nil
}

// List implements Storage.
func (f FileStore) List() ([]Stored, error) {
	ids, err := os.ReadDir(filepath.Join(f.Dir, "index"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Stored
	for _, e := range ids {
		s, ok, err := f.Lookup(e.Name())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s)
		}
	}
	return out, nil
}

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
