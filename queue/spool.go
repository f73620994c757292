package queue

import (
	"context"
	"crypto/sha256"
	"dock/queue/durable"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sys/unix"
)

// A spool file is a fixed 4 KiB header followed by the original bytes:
//
//	"DOCKSPL1" | uint32 length | JSON Header | zero padding to 4096 | content
//
// The header makes every file describe itself, so the index can be rebuilt from the spool.
const (
	spoolMagic  = "DOCKSPL1"
	headerSize  = 4096
	copyBufSize = 1 << 20
)

// Header is the self-description at the start of every spool file.
type Header struct {
	ID     string    `json:"id"`
	Record Recording `json:"recording"`
	// Encrypted: the content is an age stream (X25519, ChaCha20-Poly1305 in 64 KiB
	// chunks) under a fresh per-file key wrapped for the dock's key.
	Encrypted bool `json:"encrypted,omitempty"`
}

// Spool is the directory of write-once footage files.
type Spool struct {
	dir  string
	key  *age.X25519Identity // nil: plaintext spool (tests and benchmarks only)
	pace *pace               // nil: the disk's own rate
}

// Throttle caps the rate at which all offloads together write spool files, in bytes per
// second (0: no cap). It stands in for a slow disk (an SD card) in the simulated dock; set
// it before offloads start.
func (s *Spool) Throttle(bytesPerSecond int64) {
	s.pace = nil
	if bytesPerSecond > 0 {
		s.pace = &pace{rate: float64(bytesPerSecond)}
	}
}

// pace spaces writes as one device would serve them: each takes its length over the rate,
// one after another, whoever writes.
type pace struct {
	mu   sync.Mutex
	rate float64
	free time.Time // when the device has served every write so far
}

// wait returns once the device would have served n more bytes.
func (p *pace) wait(n int) {
	p.mu.Lock()
	now := time.Now()
	// An idle device banks no time, but a writer that overslept may catch up a little.
	if earliest := now.Add(-20 * time.Millisecond); p.free.Before(earliest) {
		p.free = earliest
	}
	p.free = p.free.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	d := p.free.Sub(now)
	p.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

// ErrShortCopy means the source ended before the size the camera announced: the camera
// was pulled, or its storage lies about the size.
var ErrShortCopy = errors.New("spool: source shorter than announced")

// ErrIntegrity means a spool file's content no longer matches its recorded hash.
var ErrIntegrity = errors.New("spool: integrity fault")

func openSpool(dir string) (*Spool, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Partial files from a copy cut short by a crash are not evidence: the camera still
	// has the original.
	tmps, _ := filepath.Glob(filepath.Join(dir, "tmp", "*"))
	for _, t := range tmps {
		os.Remove(t)
	}
	return &Spool{dir: dir}, nil
}

func (s *Spool) path(id string) string { return filepath.Join(s.dir, id+".rec") }

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// FreeBytes is the space left on the spool's filesystem for the agent.
func (s *Spool) FreeBytes() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", s.dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// writeBehind writes a spool file sequentially and has the kernel start writing back each
// durable.WriteBehindStep as it lands (durable.WriteBehind).
type writeBehind struct {
	f    *os.File
	off  int64 // where the next write goes
	pace *pace // nil: no cap
}

func (w *writeBehind) Write(p []byte) (int, error) {
	if w.pace != nil {
		w.pace.wait(len(p))
	}
	n, err := w.f.WriteAt(p, w.off)
	durable.WriteBehind(w.f, w.off, w.off+int64(n))
	w.off += int64(n)
	return n, err
}

// copyRing is how many copy buffers one offload cycles through: one being read, one
// being hashed, one being encrypted and written.
const copyRing = 3

// copyHashed copies exactly size bytes from src to dst and into h in one pass, with
// reading, hashing and writing (encryption included) each on its own goroutine over a
// ring of buffers, so that a second core hashes while the first encrypts. It returns the
// bytes read; a source that ends early is io.ErrUnexpectedEOF.
func copyHashed(ctx context.Context, src io.Reader, dst io.Writer, h io.Writer, size int64) (int64, error) {
	var ring [copyRing][]byte
	for i := range ring {
		ring[i] = make([]byte, copyBufSize)
	}
	// A buffer is refilled once both the hasher and the writer have returned its token.
	hashed, written := make(chan struct{}, copyRing), make(chan struct{}, copyRing)
	for range copyRing {
		hashed <- struct{}{}
		written <- struct{}{}
	}
	toHash, toWrite := make(chan []byte, copyRing), make(chan []byte, copyRing)
	failed := make(chan struct{}) // closed when the writer fails
	writeErr := make(chan error, 1)
	hashDone := make(chan struct{})
	go func() {
		defer close(hashDone)
		for b := range toHash {
			h.Write(b)
			hashed <- struct{}{}
		}
	}()
	go func() {
		var err error
		for b := range toWrite {
			if err == nil {
				if _, err = dst.Write(b); err != nil {
					close(failed)
				}
			}
			written <- struct{}{}
		}
		writeErr <- err
	}()
	var n int64
	var err error
	for i := 0; n < size && err == nil; i++ {
		select {
		case <-failed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-hashed:
			<-written
			buf := ring[i%copyRing][:min(copyBufSize, size-n)]
			var m int
			m, err = io.ReadFull(src, buf)
			if m > 0 {
				toHash <- buf[:m]
				toWrite <- buf[:m]
				n += int64(m)
			}
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("read source: %w", err)
			} else if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			continue
		}
		break
	}
	close(toHash)
	close(toWrite)
	<-hashDone
	if werr := <-writeErr; werr != nil {
		return n, werr
	}
	return n, err
}

// Write copies exactly rec.Size bytes from src into a new spool file, hashing in the same
// pass, and makes it durable and read-only: temporary name, fsync, rename, directory
// fsync. It returns rec with SHA256 filled. On any error nothing is left behind.
func (s *Spool) Write(ctx context.Context, rec Recording, src io.Reader) (Recording, error) {
	if !validID(rec.ID) {
		return rec, fmt.Errorf("spool: invalid recording id %q", rec.ID)
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), rec.ID+".*")
	if err != nil {
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Seek(headerSize, io.SeekStart); err != nil {
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	var dst io.Writer = &writeBehind{f: tmp, off: headerSize, pace: s.pace}
	var sealer io.WriteCloser
	if s.key != nil {
		// Each file gets its own key, wrapped for the dock's key: an SD card pulled from
		// the dock shows no footage (article 16).
		if sealer, err = age.Encrypt(dst, s.key.Recipient()); err != nil {
			return rec, fmt.Errorf("spool %s: encrypt: %w", rec.ID, err)
		}
		dst = sealer
	}
	h := sha256.New()
	if n, err := copyHashed(ctx, src, dst, h, rec.Size); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return rec, fmt.Errorf("spool %s: %w: %d of %d bytes", rec.ID, ErrShortCopy, n, rec.Size)
		}
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	// A source longer than announced is as suspect as a shorter one.
	var one [1]byte
	if m, _ := src.Read(one[:]); m > 0 {
		return rec, fmt.Errorf("spool %s: source longer than the announced %d bytes", rec.ID, rec.Size)
	}
	if sealer != nil {
		if err := sealer.Close(); err != nil {
			return rec, fmt.Errorf("spool %s: encrypt: %w", rec.ID, err)
		}
	}
	rec.SHA256 = hex.EncodeToString(h.Sum(nil))
	hdr, err := encodeHeader(Header{ID: rec.ID, Record: rec, Encrypted: sealer != nil})
	if err != nil {
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	if _, err := tmp.WriteAt(hdr, 0); err != nil {
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	if err := tmp.Chmod(0o400); err != nil {
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	if err := tmp.Sync(); err != nil {
		return rec, fmt.Errorf("spool %s: fsync: %w", rec.ID, err)
	}
	if err := tmp.Close(); err != nil {
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	// Write once: never replace an existing spool file, even one that appeared since.
	if err := renameNoReplace(tmp.Name(), s.path(rec.ID)); err != nil {
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	ok = true
	if err := durable.Sync(s.dir); err != nil {
		return rec, fmt.Errorf("spool %s: %w", rec.ID, err)
	}
	return rec, nil
}

func encodeHeader(h Header) ([]byte, error) {
	j, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(spoolMagic)+4+len(j) > headerSize {
		return nil, fmt.Errorf("header of %d bytes does not fit", len(j))
	}
	b := make([]byte, headerSize)
	copy(b, spoolMagic)
	binary.BigEndian.PutUint32(b[8:], uint32(len(j)))
	copy(b[12:], j)
	return b, nil
}

// ReadHeader reads a spool file's self-description.
func ReadHeader(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	return readHeader(f)
}

func readHeader(f *os.File) (Header, error) {
	b := make([]byte, headerSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return Header{}, fmt.Errorf("spool header %s: %w", f.Name(), err)
	}
	if string(b[:8]) != spoolMagic {
		return Header{}, fmt.Errorf("spool header %s: bad magic", f.Name())
	}
	n := binary.BigEndian.Uint32(b[8:])
	if int(n) > headerSize-12 {
		return Header{}, fmt.Errorf("spool header %s: bad length %d", f.Name(), n)
	}
	var h Header
	if err := json.Unmarshal(b[12:12+n], &h); err != nil {
		return Header{}, fmt.Errorf("spool header %s: %w", f.Name(), err)
	}
	return h, nil
}

// Footage is an open spool file's original bytes.
type Footage struct {
	*io.SectionReader
	f *os.File
}

// Close closes the file.
func (f *Footage) Close() error { return f.f.Close() }

func (s *Spool) open(rec Recording) (*Footage, error) {
	f, err := os.Open(s.path(rec.ID))
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", rec.ID, err)
	}
	hdr, err := readHeader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open spool %s: %w", rec.ID, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open spool %s: %w", rec.ID, err)
	}
	body := info.Size() - headerSize
	if !hdr.Encrypted {
		if body != rec.Size {
			f.Close()
			return nil, fmt.Errorf("open spool %s: %w: %d bytes, want %d", rec.ID, ErrIntegrity, body, rec.Size)
		}
		return &Footage{SectionReader: io.NewSectionReader(f, headerSize, rec.Size), f: f}, nil
	}
	if s.key == nil {
		f.Close()
		return nil, fmt.Errorf("open spool %s: encrypted, and no dock key is configured", rec.ID)
	}
	// Random access into the age stream: a resumed upload decrypts from its offset on.
	ra, size, err := age.DecryptReaderAt(io.NewSectionReader(f, headerSize, body), body, s.key)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open spool %s: %w: %v", rec.ID, ErrIntegrity, err)
	}
	if size != rec.Size {
		f.Close()
		return nil, fmt.Errorf("open spool %s: %w: %d bytes, want %d", rec.ID, ErrIntegrity, size, rec.Size)
	}
	return &Footage{SectionReader: io.NewSectionReader(ra, 0, size), f: f}, nil
}

// removeOrphan deletes the spool file of id, which the caller knows has no record.
func (s *Spool) removeOrphan(id string) error {
	if _, err := os.Stat(s.path(id)); err != nil {
		return nil
	}
	return s.remove(id)
}

func (s *Spool) remove(id string) error {
	p := s.path(id)
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("free spool %s: %w", id, err)
	}
	return durable.Sync(s.dir)
}

// ErrExists means a file is already at the name a write-once file was to take.
var ErrExists = errors.New("already exists")

// renameNoReplace moves from to to, failing with ErrExists if to exists, atomically:
// renameat2(RENAME_NOREPLACE), or where the filesystem lacks it, link(2) (which never
// replaces) and unlink.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		if err = os.Link(from, to); err == nil {
			return os.Remove(from)
		}
	}
	if errors.Is(err, unix.EEXIST) || errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w", filepath.Base(to), ErrExists)
	}
	if err != nil {
		return fmt.Errorf("rename %s: %w", filepath.Base(to), err)
	}
	return nil
}
