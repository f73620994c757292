package central

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Storage is where central keeps recordings: partial uploads by dock, and verified
// recordings by device. FileStore is the filesystem implementation.
type Storage interface {
	// Lookup returns the verified recording id, if central has it.
	Lookup(id string) (Stored, bool, error)
	// Part opens (creating) the partial upload of id from dock for writing at its end,
	// and reports how many bytes it already holds.
	Part(dock, id string) (*os.File, int64, error)
	// Commit makes the partial upload durable as a verified recording.
	Commit(dock string, s Stored) error
	// Discard drops a partial upload.
	Discard(dock, id string) error
	// List returns every verified recording.
	List() ([]Stored, error)
}

// FileStore keeps recordings under a directory:
//
//	incoming/<dock>/<id>.part          partial uploads
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

// Part implements Storage.
func (f FileStore) Part(dock, id string) (*os.File, int64, error) {
	if err := errors.Join(safe(dock), safe(id)); err != nil {
		return nil, 0, err
	}
	p := f.partPath(dock, id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, 0, err
	}
	file, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	n, err := file.Seek(0, io.SeekEnd)
	if err != nil {
		file.Close()
		return nil, 0, err
	}
	return file, n, nil
}

// Commit implements Storage: rename the part into place, read-only, then its metadata,
// checksum line and index entry, each synced.
func (f FileStore) Commit(dock string, s Stored) error {
	id, dev := s.Meta.ID, s.Meta.Device
	if err := errors.Join(safe(dock), safe(id), safe(dev)); err != nil {
		return err
	}
	dir := filepath.Join(f.Dir, "recordings", dev)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	final := filepath.Join(dir, id)
	if err := os.Chmod(f.partPath(dock, id), 0o440); err != nil {
		return err
	}
	if err := os.Rename(f.partPath(dock, id), final); err != nil {
		return err
	}
	meta, _ := json.MarshalIndent(s, "", "  ")
	if err := writeSynced(final+".json", meta); err != nil {
		return err
	}
	if err := writeSynced(final+".sha256", []byte(s.SHA256+"  "+id+"\n")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(f.Dir, "index"), 0o750); err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(f.Dir, "index", id), []byte(dev)); err != nil {
		return err
	}
	return syncDir(dir)
}

// Discard implements Storage.
func (f FileStore) Discard(dock, id string) error {
	if err := errors.Join(safe(dock), safe(id)); err != nil {
		return err
	}
	err := os.Remove(f.partPath(dock, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
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

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
