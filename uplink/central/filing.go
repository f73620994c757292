package central

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Finish implements Storage. It is idempotent: an end repeated, or sent again after a
// crash at any step, gets the same record. An end announcing other bytes than the dock
// filed is refused with a *FiledError, and what was filed stays.
func (f FileStore) Finish(dock, id string, size int64, sum string) (Stored, error) {
	s, err := f.finish(dock, id, size, sum)
	if err != nil {
		return s, fmt.Errorf("finish %s/%s: %w", dock, id, err)
	}
	return s, nil
}

func (f FileStore) finish(dock, id string, size int64, sum string) (Stored, error) {
	u, err := f.lock(dock, id, false)
	if errors.Is(err, ErrNotBegun) {
		// Finished by another instance while this one waited, or never begun.
		if s, ok, lerr := f.Filed(dock, id); lerr != nil || ok {
			if lerr != nil {
				return Stored{}, lerr
			}
			return s, filedAs(s, size, sum)
		}
		return Stored{}, &IncompleteError{Size: size}
	}
	if err != nil {
		return Stored{}, err
	}
	defer u.close()
	if s, ok, err := f.Filed(dock, id); err != nil {
		return Stored{}, err
	} else if ok {
		// Filed, and a crash left its upload behind (or a begin that raced with the end).
		if err := u.discard(); err != nil {
			return Stored{}, err
		}
		return s, filedAs(s, size, sum)
	}
	if u.st.Filing == nil {
		if err := f.verify(dock, u, size, sum); err != nil {
			return Stored{}, err
		}
	}
	s, err := f.file(dock, u)
	if err != nil {
		return Stored{}, err
	}
	return s, filedAs(s, size, sum)
}

// verify checks a complete upload against the disk and the dock's hash, and records, durably,
// what it is to be filed as (u.st.Filing).
func (f FileStore) verify(dock string, u *lockedUpload, size int64, sum string) error {
	if u.st.Size != size || u.st.Held != size {
		return &IncompleteError{Held: u.st.Held, Size: size}
	}
	h, err := loadHash(u.st.Hash)
	if err != nil {
		return err
	}
	got := hex.EncodeToString(h.Sum(nil))
	onDisk, err := u.hashDisk(size)
	if err != nil {
		return err
	}
	if onDisk != got {
		// The state outlived bytes of the part (a power cut): go back to the last point
		// the part was synced at, and have the dock send the rest again.
		d := u.durable()
		if fi, err := os.Stat(u.part); err != nil || fi.Size() < d.Held {
			d = checkpoint{Hash: emptyHash()} // not even that: start over
		}
		u.st.Held, u.st.Hash, u.st.Ahead = d.Held, d.Hash, nil
		if err := u.save(false); err != nil {
			return err
		}
		return &IncompleteError{Held: d.Held, Size: size}
	}
	if got != sum || got != u.st.Claimed {
		// Store nothing that does not match; the dock keeps its copy and retries.
		if err := u.discard(); err != nil {
			return err
		}
		return &MismatchError{Size: size, SHA256: got}
	}
	u.st.Filing = &Stored{Meta: u.st.Meta, Dock: dock, Size: size, SHA256: got, Stored: time.Now().UTC()}
	if err := u.save(true); err != nil {
		return err
	}
	crashAt("filing recorded")
	return nil
}

// hashDisk fsyncs the part and returns the SHA-256 of its size bytes as the disk holds them,
// reading only what follows the last checkpoint: "" if the part is not there or not whole.
func (u *lockedUpload) hashDisk(size int64) (string, error) {
	flags := os.O_RDWR
	if size == 0 {
		flags |= os.O_CREATE // begun before parts were created at begin
	}
	part, err := os.OpenFile(u.part, flags, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer part.Close()
	fi, err := part.Stat()
	if err != nil {
		return "", err
	}
	if fi.Size() > size {
		// Nothing is written past the announced size; keep it so, in what is filed.
		if err := part.Truncate(size); err != nil {
			return "", err
		}
	}
	if err := part.Sync(); err != nil {
		return "", fmt.Errorf("fsync: %w", err)
	}
	crashAt("part synced")
	d := u.durable()
	h, err := loadHash(d.Hash)
	if err != nil {
		return "", err
	}
	if n, err := io.Copy(h, io.NewSectionReader(part, d.Held, size-d.Held)); err != nil {
		return "", err
	} else if n != size-d.Held {
		return "", nil
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// file files a verified upload (u.st.Filing), from wherever a crash stopped an earlier try,
// and clears the upload away. Nothing already at a name it files to is replaced: the
// footage is linked to its place (link(2) fails on an existing name), and so are its
// metadata, checksum line and index entry, each written and fsynced under a temporary name
// first. The index entry comes last, after the directory holding the rest is fsynced: once
// it is there, the recording is filed.
func (f FileStore) file(dock string, u *lockedUpload) (Stored, error) {
	s := *u.st.Filing
	id, dev := s.Meta.ID, s.Meta.Device
	if err := errors.Join(safe(dock), safe(id), safe(dev)); err != nil {
		return Stored{}, err
	}
	final := f.filedPath(dock, s.Meta)
	dir := filepath.Dir(final)
	if err := mkdirSynced(f.Dir, dir); err != nil {
		return Stored{}, err
	}
	if err := f.placeFootage(u.part, final, s); err != nil {
		return Stored{}, err
	}
	crashAt("footage in place")
	meta, _ := json.MarshalIndent(s, "", "  ")
	if err := writeNew(final+".json", meta); err != nil {
		return Stored{}, err
	}
	crashAt("metadata written")
	if err := writeNew(final+".sha256", []byte(s.SHA256+"  "+id+"\n")); err != nil {
		return Stored{}, err
	}
	crashAt("checksum written")
	if err := syncPath(dir); err != nil {
		return Stored{}, fmt.Errorf("fsync %s: %w", dir, err)
	}
	index := f.indexPath(dock, id)
	if err := mkdirSynced(f.Dir, filepath.Dir(index)); err != nil {
		return Stored{}, err
	}
	if err := writeNew(index, []byte(dev)); err != nil {
		return Stored{}, err
	}
	if err := syncPath(filepath.Dir(index)); err != nil {
		return Stored{}, fmt.Errorf("fsync %s: %w", filepath.Dir(index), err)
	}
	crashAt("indexed")
	if err := u.discard(); err != nil {
		return Stored{}, err
	}
	s.Path = final
	return s, nil
}

// placeFootage gives the verified part its filed name, read-only, never replacing a file
// there: if the name is taken, it must be this very part (linked before a crash), or, the
// part's own name gone, a file with exactly the bytes verified.
func (f FileStore) placeFootage(part, final string, s Stored) error {
	if err := os.Chmod(part, 0o440); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	err := os.Link(part, final)
	if err == nil || !errors.Is(err, os.ErrExist) {
		return err
	}
	there, err := os.Stat(final)
	if err != nil {
		return err
	}
	if ours, err := os.Stat(part); err == nil {
		if os.SameFile(ours, there) {
			return nil
		}
		return fmt.Errorf("%s holds another file: refusing to replace it", final)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	got, err := hashFile(final)
	if err != nil {
		return err
	}
	if there.Size() != s.Size || got != s.SHA256 {
		return fmt.Errorf("%s holds other bytes (sha256 %s) than verified (%s): refusing to replace it", final, got, s.SHA256)
	}
	return nil
}

func hashFile(path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
