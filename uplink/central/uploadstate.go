package central

import (
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
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"dock/queue/durable"
	"dock/uplink/wire"
)

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
