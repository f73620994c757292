package central

import (
	"cmp"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"dock/uplink/wire"
)

// uploadState is an upload's shared state, kept beside its part file. Held bytes are
// hashed in order as they become contiguous, whichever instance wrote them; bytes stored
// past Held wait in Ahead.
type uploadState struct {
	Transfer string             `json:"transfer"`
	Meta     wire.RecordingMeta `json:"recording"`
	Claimed  string             `json:"sha256"` // the dock's hash at begin
	Size     int64              `json:"size"`
	Held     int64              `json:"held"`
	Hash     []byte             `json:"hash"`            // SHA-256 state over the held bytes
	Ahead    [][2]int64         `json:"ahead,omitempty"` // stored ranges past Held: sorted, disjoint
}

// lockedUpload is an upload's state file, locked against every other instance.
type lockedUpload struct {
	f    *os.File
	st   uploadState
	part string
}

func (f FileStore) statePath(dock, id string) string {
	return filepath.Join(f.Dir, "incoming", dock, id+".state")
}

// lock opens and locks an upload's state file. Without create, a missing upload is
// ErrNotBegun.
func (f FileStore) lock(dock, id string, create bool) (*lockedUpload, error) {
	if err := errors.Join(safe(dock), safe(id)); err != nil {
		return nil, err
	}
	path := f.statePath(dock, id)
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
	}
	for {
		sf, err := os.OpenFile(path, flags, 0o600)
		if errors.Is(err, os.ErrNotExist) && !create {
			return nil, ErrNotBegun
		}
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(sf.Fd()), syscall.LOCK_EX); err != nil {
			sf.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// Another instance may have finished the upload and removed the file while this
		// one waited for the lock: then the locked file is no longer the one at path.
		var held, now syscall.Stat_t
		if syscall.Fstat(int(sf.Fd()), &held) != nil || syscall.Stat(path, &now) != nil || held.Ino != now.Ino {
			sf.Close()
			if !create {
				return nil, ErrNotBegun
			}
			continue
		}
		u := &lockedUpload{f: sf, part: f.partPath(dock, id)}
		b, err := io.ReadAll(sf)
		if err == nil && len(b) > 0 {
			err = json.Unmarshal(b, &u.st)
		}
		if err != nil {
			sf.Close()
			return nil, fmt.Errorf("upload state %s: %w", path, err)
		}
		return u, nil
	}
}

// save writes the state back; close unlocks.
func (u *lockedUpload) save() error {
	b, err := json.Marshal(u.st)
	if err != nil {
		return err
	}
	if _, err := u.f.WriteAt(b, 0); err != nil {
		return err
	}
	return u.f.Truncate(int64(len(b)))
}

func (u *lockedUpload) close() { u.f.Close() }

func (u *lockedUpload) upload() Upload {
	return Upload{Transfer: u.st.Transfer, Size: u.st.Size, Held: u.st.Held}
}

func (u *lockedUpload) hash() (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(u.st.Hash); err != nil {
		return nil, fmt.Errorf("upload hash state: %w", err)
	}
	return h, nil
}

// Begin implements Storage.
func (f FileStore) Begin(dock, transfer string, meta wire.RecordingMeta, size int64, sum string) (Upload, error) {
	if size < 0 {
		return Upload{}, fmt.Errorf("begin %s: negative size", meta.ID)
	}
	u, err := f.lock(dock, meta.ID, true)
	if err != nil {
		return Upload{}, err
	}
	defer u.close()
	if u.st.Hash == nil || u.st.Size != size || u.st.Claimed != sum {
		// New, or announced otherwise than before: start from nothing.
		h, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
		u.st = uploadState{Meta: meta, Size: size, Claimed: sum, Hash: h}
		// The part exists from the start, empty: a recording of 0 bytes gets no chunk.
		part, err := os.OpenFile(u.part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		if err := part.Close(); err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
	}
	u.st.Transfer = transfer
	return u.upload(), u.save()
}

// Held implements Storage.
func (f FileStore) Held(dock, id string) (Upload, bool, error) {
	u, err := f.lock(dock, id, false)
	if errors.Is(err, ErrNotBegun) {
		return Upload{}, false, nil
	}
	if err != nil {
		return Upload{}, false, err
	}
	defer u.close()
	return u.upload(), true, nil
}

// Write implements Storage.
func (f FileStore) Write(dock, id string, off int64, data []byte) (Upload, error) {
	u, err := f.lock(dock, id, false)
	if errors.Is(err, ErrNotBegun) {
		// A late repeat of a chunk of a recording already verified is answered as complete.
		if s, ok, lerr := f.Filed(dock, id); lerr == nil && ok {
			return Upload{Size: s.Size, Held: s.Size}, nil
		}
	}
	if err != nil {
		return Upload{}, err
	}
	defer u.close()
	// Compared without adding first: off + len can wrap past the largest int64.
	if off < 0 || off > u.st.Size || int64(len(data)) > u.st.Size-off {
		return Upload{}, fmt.Errorf("chunk of %d bytes at %d outside the announced size %d of %s", len(data), off, u.st.Size, id)
	}
	end := off + int64(len(data))
	if end <= u.st.Held || covered(u.st.Ahead, off, end) {
		return u.upload(), nil // a repeat
	}
	if off < u.st.Held {
		// Never rewrite bytes already hashed.
		data, off = data[u.st.Held-off:], u.st.Held
	}
	part, err := os.OpenFile(u.part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Upload{}, err
	}
	defer part.Close()
	if _, err := part.WriteAt(data, off); err != nil {
		return Upload{}, fmt.Errorf("store %s at %d: %w", id, off, err)
	}
	if step := int64(writeBehindStep); end/step > off/step {
		// Start the disk on what has piled up, without waiting: the fsync before the
		// receipt then finds little left to write. Advice only.
		from := (off / step) * step
		_ = unix.SyncFileRange(int(part.Fd()), from, end-from, unix.SYNC_FILE_RANGE_WRITE)
	}
	u.st.Ahead = addRange(u.st.Ahead, off, end)
	if len(u.st.Ahead) > 0 && u.st.Ahead[0][0] <= u.st.Held {
		// Hash what just became contiguous: this chunk from memory, the rest (written by
		// other instances) from the part file.
		h, err := u.hash()
		if err != nil {
			return Upload{}, err
		}
		to := u.st.Ahead[0][1]
		for pos := u.st.Held; pos < to; {
			if pos >= off && pos < end {
				n := min(to, end) - pos
				h.Write(data[pos-off : pos-off+n])
				pos += n
				continue
			}
			next := to
			if off > pos && off < to {
				next = off
			}
			if _, err := io.Copy(h, io.NewSectionReader(part, pos, next-pos)); err != nil {
				return Upload{}, fmt.Errorf("hash %s at %d: %w", id, pos, err)
			}
			pos = next
		}
		u.st.Held, u.st.Ahead = to, u.st.Ahead[1:]
		if u.st.Hash, err = h.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
			return Upload{}, err
		}
	}
	return u.upload(), u.save()
}

// writeBehindStep is how many bytes of an upload pile up before the disk is started on them.
const writeBehindStep = 16 << 20

// covered reports whether [from, to) lies inside one of the ranges.
func covered(rs [][2]int64, from, to int64) bool {
	for _, r := range rs {
		if r[0] <= from && to <= r[1] {
			return true
		}
	}
	return false
}

// addRange adds [from, to) to sorted disjoint ranges, merging what touches.
func addRange(rs [][2]int64, from, to int64) [][2]int64 {
	rs = append(rs, [2]int64{from, to})
	slices.SortFunc(rs, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r[0] <= last[1] {
			last[1] = max(last[1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// Finish implements Storage.
func (f FileStore) Finish(dock, id string, size int64, sum string) (Stored, error) {
	if s, ok, err := f.Filed(dock, id); err != nil || ok {
		return s, err
	}
	u, err := f.lock(dock, id, false)
	if errors.Is(err, ErrNotBegun) {
		// Finished by another instance while this one waited, or never begun.
		if s, ok, lerr := f.Filed(dock, id); lerr != nil || ok {
			return s, lerr
		}
		return Stored{}, &IncompleteError{Size: size}
	}
	if err != nil {
		return Stored{}, err
	}
	defer u.close()
	if u.st.Size != size || u.st.Held != size {
		return Stored{}, &IncompleteError{Held: u.st.Held, Size: size}
	}
	h, err := u.hash()
	if err != nil {
		return Stored{}, err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if size == 0 {
		// Begun before parts were created at begin: a 0-byte recording has no chunk to
		// create its part.
		if part, err := os.OpenFile(u.part, os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
			part.Close()
		}
	}
	if err := syncPath(u.part); err != nil {
		return Stored{}, fmt.Errorf("fsync %s: %w", id, err)
	}
	if got != sum || got != u.st.Claimed {
		// Store nothing that does not match; the dock keeps its copy and retries.
		err := errors.Join(os.Remove(u.part), os.Remove(u.f.Name()))
		if err != nil {
			return Stored{}, err
		}
		return Stored{}, &MismatchError{Size: size, SHA256: got}
	}
	s := Stored{Meta: u.st.Meta, Dock: dock, Size: size, SHA256: got, Stored: time.Now().UTC()}
	if err := f.commit(dock, s); err != nil {
		return Stored{}, fmt.Errorf("commit %s: %w", id, err)
	}
	if err := os.Remove(u.f.Name()); err != nil {
		return Stored{}, err
	}
	s.Path = f.filedPath(dock, s.Meta)
	return s, nil
}

// commit renames the part into place, read-only, then writes its metadata, checksum line
// and index entry, each synced.
func (f FileStore) commit(dock string, s Stored) error {
	id, dev := s.Meta.ID, s.Meta.Device
	if err := errors.Join(safe(dock), safe(id), safe(dev)); err != nil {
		return err
	}
	final := f.filedPath(dock, s.Meta)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
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
	if err := os.MkdirAll(filepath.Dir(f.indexPath(dock, id)), 0o750); err != nil {
		return err
	}
	if err := writeSynced(f.indexPath(dock, id), []byte(dev)); err != nil {
		return err
	}
	return syncPath(dir)
}
