package central

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"dock/queue/durable"
	"dock/uplink/wire"
)

// uploadState is an upload's shared state, kept beside its part file. Held bytes are
// hashed in order as they become contiguous, whichever instance wrote them; bytes stored
// past Held wait in Ahead.
//
// The state is saved for every chunk, in place, into one of two slots of its file in turn
// (see save): a crash that tears a save leaves the other slot, one save older. It is not
// fsynced: that would cost two disk flushes a chunk. A power cut can therefore keep a state
// that counts bytes the part lost. Durable bounds what that can cost: the part is fsynced
// as Held passes every durableStep bytes, and only then is the point recorded; a state
// saved before the last reboot (Boot) is taken back to it when read, and Finish hashes the
// part from there on from the disk, falling back to Durable if that differs from Hash.
// Nothing central receipts is ever a hash of bytes it does not hold.
type uploadState struct {
	Transfer string             `json:"transfer"`
	Meta     wire.RecordingMeta `json:"recording"`
	Claimed  string             `json:"sha256"` // the dock's hash at begin
	Size     int64              `json:"size"`
	Held     int64              `json:"held"`
	Hash     []byte             `json:"hash"`            // SHA-256 state over the held bytes
	Ahead    [][2]int64         `json:"ahead,omitempty"` // stored ranges past Held: sorted, disjoint
	Durable  checkpoint         `json:"durable"`
	Boot     string             `json:"boot"` // bootID when saved
	// Filing is set, and the state fsynced, once the upload is verified and before any of
	// its filing is written: what it is filed as (its receipt). From then on the upload is
	// only ever completed, from wherever a crash stopped it, never reset or refused.
	Filing *Stored `json:"filing,omitempty"`
}

// checkpoint is a point up to which the part was fsynced, with the hash state there.
type checkpoint struct {
	Held int64  `json:"held"`
	Hash []byte `json:"hash"`
}

// durableStep is how many held bytes of an upload may be lost to a power cut at most.
var durableStep int64 = durable.WriteBehindStep

// bootID names the machine's running boot. A state saved under another boot may count
// bytes its part lost to the power cut (or kernel crash) that ended that boot, and so may
// every checkpoint taken after it: such a state is taken back to its last checkpoint when
// read. Within one boot the page cache holds whatever was written, whichever process wrote
// it and however it died. Instances sharing one FileStore therefore run on one machine.
var bootID = readBootID()

func readBootID() string {
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id
		}
	}
	// Unknown: this process's own, so that every restart counts as a reboot (safe: only
	// bytes since the last checkpoint are sent again).
	var r [16]byte
	_, _ = rand.Read(r[:])
	return "process-" + hex.EncodeToString(r[:])
}

// maxAhead bounds the ranges stored past Held, and so the size of the state written for
// each chunk. A dock keeps at most wire.MaxWindow chunks unacknowledged; a chunk that would
// open one range more is not stored, and is sent again from the acknowledged offset.
const maxAhead = 4 * wire.MaxWindow

// lockedUpload is an upload's state file, locked against every other instance.
type lockedUpload struct {
	f    *os.File
	path string
	st   uploadState
	seq  uint64 // of the slot st was read from
	part string
}

// The state file's two slots start slotSize apart (the file is sparse). A slot is
//
//	"DCS1" | sequence (uint64) | length (uint32) | CRC-32C of sequence, length and JSON | JSON
//
// big-endian; the valid slot with the higher sequence is the state.
const (
	slotSize   = 1 << 20
	slotHeader = 20
	slotMagic  = "DCS1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (f FileStore) statePath(dock, id string) string {
	return filepath.Join(f.Dir, "incoming", dock, id+".state")
}

func emptyHash() []byte {
	h, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	return h
}

// lock opens and locks an upload's state file. Without create, a missing upload, or one
// whose state a power cut tore, is ErrNotBegun; with create, a torn state reads as none.
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
		// While this one waited for the lock, another instance may have finished the
		// upload and removed the file (and a begin made another): then the locked file is
		// no longer the one at path.
		var held, now syscall.Stat_t
		if err := syscall.Fstat(int(sf.Fd()), &held); err != nil {
			sf.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := syscall.Stat(path, &now); err != nil || held.Ino != now.Ino || held.Dev != now.Dev {
			sf.Close()
			if err != nil && !errors.Is(err, syscall.ENOENT) {
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			if err != nil && !create {
				return nil, ErrNotBegun
			}
			continue
		}
		u := &lockedUpload{f: sf, path: path, part: f.partPath(dock, id)}
		if err := u.load(); err != nil {
			sf.Close()
			return nil, fmt.Errorf("upload state %s: %w", path, err)
		}
		if u.st.Hash == nil && !create {
			sf.Close()
			return nil, ErrNotBegun
		}
		if u.st.Hash != nil && u.st.Filing == nil && u.st.Boot != bootID {
			// Saved before the machine last went down: trust only what was synced.
			d := u.durable()
			u.st.Held, u.st.Hash, u.st.Ahead, u.st.Boot = d.Held, d.Hash, nil, bootID
		}
		return u, nil
	}
}

// crashPoint, set by tests, runs at each step where a crash leaves the store in another
// state on disk; a test makes it panic to leave the files exactly as a crash there would.
var crashPoint func(step string)

func crashAt(step string) {
	if crashPoint != nil {
		crashPoint(step)
	}
}

// load reads the state from the newer valid slot; with neither valid (a new file, or one
// a power cut tore on a filesystem that does not order its writes), the state is none and
// the upload starts over. Never one with Filing set: that save was fsynced, and is the last.
func (u *lockedUpload) load() error {
	var best []byte
	found := false
	for i := range int64(2) {
		var hdr [slotHeader]byte
		if n, err := u.f.ReadAt(hdr[:], i*slotSize); n < slotHeader {
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			continue // never written
		}
		seq, n := binary.BigEndian.Uint64(hdr[4:12]), binary.BigEndian.Uint32(hdr[12:16])
		if string(hdr[:4]) != slotMagic || n > slotSize-slotHeader || (found && seq <= u.seq) {
			continue
		}
		body := make([]byte, n)
		if m, err := u.f.ReadAt(body, i*slotSize+slotHeader); m < len(body) {
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			continue
		}
		if crc32.Update(crc32.Checksum(hdr[4:16], castagnoli), castagnoli, body) != binary.BigEndian.Uint32(hdr[16:20]) {
			continue
		}
		best, u.seq, found = body, seq, true
	}
	if found && json.Unmarshal(best, &u.st) != nil {
		u.st = uploadState{}
	}
	return nil
}

// save writes u.st whole into the slot the last save did not use, in place: no file is
// created or renamed for a chunk. A crash that tears it leaves the other slot valid.
// With durable, the state (and its file's name) survives a power cut once save returns.
func (u *lockedUpload) save(durable bool) error {
	u.st.Boot = bootID
	body, err := json.Marshal(u.st)
	if err != nil {
		return err
	}
	if len(body) > slotSize-slotHeader {
		return fmt.Errorf("save %s: state of %d bytes, more than a slot holds", u.path, len(body))
	}
	u.seq++
	b := make([]byte, slotHeader, slotHeader+len(body))
	copy(b, slotMagic)
	binary.BigEndian.PutUint64(b[4:12], u.seq)
	binary.BigEndian.PutUint32(b[12:16], uint32(len(body)))
	binary.BigEndian.PutUint32(b[16:20], crc32.Update(crc32.Checksum(b[4:16], castagnoli), castagnoli, body))
	b = append(b, body...)
	at := int64(u.seq%2) * slotSize
	if crashPoint != nil {
		// Tests: a crash may stop a write half way.
		half := len(b) / 2
		if _, err := u.f.WriteAt(b[:half], at); err != nil {
			return fmt.Errorf("save %s: %w", u.path, err)
		}
		crashAt("state half saved")
		b, at = b[half:], at+int64(half)
	}
	if _, err := u.f.WriteAt(b, at); err != nil {
		return fmt.Errorf("save %s: %w", u.path, err)
	}
	if durable {
		if err := unix.Fdatasync(int(u.f.Fd())); err != nil {
			return fmt.Errorf("fsync %s: %w", u.path, err)
		}
		if err := syncPath(filepath.Dir(u.path)); err != nil {
			return fmt.Errorf("fsync %s: %w", filepath.Dir(u.path), err)
		}
	}
	return nil
}

// discard removes the upload: its part's name (a filed recording keeps its own), then its
// state. A crash between the two leaves a state that the next begin or end clears again.
func (u *lockedUpload) discard() error {
	err := os.Remove(u.part)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	crashAt("part's name removed")
	return errors.Join(err, os.Remove(u.path))
}

func (u *lockedUpload) close() { u.f.Close() }

func (u *lockedUpload) upload() Upload {
	if u.st.Filing != nil {
		return Upload{Transfer: u.st.Transfer, Size: u.st.Size, Held: u.st.Size}
	}
	return Upload{Transfer: u.st.Transfer, Size: u.st.Size, Held: u.st.Held}
}

func loadHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("upload hash state: %w", err)
	}
	return h, nil
}

// durable is the state's checkpoint (the start, in a state written before there were any).
func (u *lockedUpload) durable() checkpoint {
	if u.st.Durable.Hash == nil {
		return checkpoint{Held: 0, Hash: emptyHash()}
	}
	return u.st.Durable
}

// Begin implements Storage. For a recording the dock already filed it returns a
// *FiledError with the record, having completed a filing a crash interrupted.
func (f FileStore) Begin(dock, transfer string, meta wire.RecordingMeta, size int64, sum string) (Upload, error) {
	if size < 0 {
		return Upload{}, fmt.Errorf("begin %s: negative size", quoteShort(meta.ID))
	}
	// The device names the directory it is filed in: refused now, not at the end.
	if err := errors.Join(safe(dock), safe(meta.ID), safe(meta.Device)); err != nil {
		return Upload{}, fmt.Errorf("begin: %w", err)
	}
	u, err := f.lock(dock, meta.ID, true)
	if err != nil {
		return Upload{}, err
	}
	defer u.close()
	if s, ok, err := f.Filed(dock, meta.ID); err != nil {
		return Upload{}, err
	} else if ok {
		// Filed already: what is here is a leftover of its upload, or of a begin that
		// raced with its end.
		if err := u.discard(); err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		return Upload{}, &FiledError{Stored: s, Other: filedAs(s, size, sum) != nil}
	}
	if u.st.Filing != nil {
		// Verified, and filing when central stopped: file it, whatever this begin says.
		s, err := f.file(dock, u)
		if err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		return Upload{}, &FiledError{Stored: s, Other: filedAs(s, size, sum) != nil}
	}
	if u.st.Hash == nil || u.st.Size != size || u.st.Claimed != sum {
		// New, or announced otherwise than before: start from nothing, in a new part. The
		// old one is unlinked, not truncated: a name is all this takes away.
		if err := os.Remove(u.part); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		// The part exists from the start, empty: a recording of 0 bytes gets no chunk.
		part, err := os.OpenFile(u.part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		if err := part.Close(); err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		h := emptyHash()
		u.st = uploadState{Meta: meta, Size: size, Claimed: sum, Hash: h, Durable: checkpoint{Hash: h}}
		crashAt("begun, state not saved")
	}
	u.st.Transfer = transfer
	if err := u.save(false); err != nil {
		return Upload{}, err
	}
	return u.upload(), nil
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
	if u.st.Filing != nil {
		return u.upload(), nil // verified: every byte is held
	}
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
	if off > u.st.Held && len(u.st.Ahead) >= maxAhead && !touches(u.st.Ahead, off, end) {
		return u.upload(), nil // too scattered: the dock sends it again after the gaps
	}
	part, err := os.OpenFile(u.part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Upload{}, err
	}
	defer part.Close()
	if _, err := part.WriteAt(data, off); err != nil {
		return Upload{}, fmt.Errorf("store %s at %d: %w", id, off, err)
	}
	crashAt("chunk stored, state not saved")
	// Start the disk on what has piled up, without waiting: the fsync before the receipt
	// then finds little left to write.
	durable.WriteBehind(part, off, end)
	u.st.Ahead = addRange(u.st.Ahead, off, end)
	if len(u.st.Ahead) > 0 && u.st.Ahead[0][0] <= u.st.Held {
		// Hash what just became contiguous: this chunk from memory, the rest (written by
		// other instances) from the part file.
		h, err := loadHash(u.st.Hash)
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
		if u.st.Held/durableStep > u.durable().Held/durableStep {
			// A checkpoint: what is held so far survives a power cut from here on.
			if err := unix.Fdatasync(int(part.Fd())); err != nil {
				return Upload{}, fmt.Errorf("fsync %s: %w", id, err)
			}
			u.st.Durable = checkpoint{Held: u.st.Held, Hash: u.st.Hash}
		}
	}
	if err := u.save(false); err != nil {
		return Upload{}, err
	}
	return u.upload(), nil
}

// covered reports whether [from, to) lies inside one of the ranges.
func covered(rs [][2]int64, from, to int64) bool {
	for _, r := range rs {
		if r[0] <= from && to <= r[1] {
			return true
		}
	}
	return false
}

// touches reports whether [from, to) overlaps or adjoins one of the ranges.
func touches(rs [][2]int64, from, to int64) bool {
	for _, r := range rs {
		if from <= r[1] && r[0] <= to {
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
