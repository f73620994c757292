// Package sim owns the simulated dock: fake GPIO lines, cameras behind real
// pseudo-terminals, and their footage on disk. It is never linked into the dock agent.
package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"dock/hw/camlink"
)

// CameraState is everything a simulated camera remembers, kept in camera.json beside its
// footage so that a camera survives the simulator's restart.
type CameraState struct {
	Identity  camlink.Identity `json:"identity"`
	Password  string           `json:"password"`
	ChargePct float64          `json:"charge_pct"`
	TempDeciC int              `json:"temp_dc"`
	Cycles    int              `json:"cycles"`
	FullMAh   int              `json:"full_mah"`
	DesignMAh int              `json:"design_mah"`
	Capacity  int64            `json:"capacity"`
	BadBlocks int              `json:"bad_blocks"`
	WearPct   int              `json:"wear_pct"`
	Errors    int              `json:"errors"`
	// ClockOffset is how far the camera's clock runs ahead of true time.
	ClockOffset time.Duration `json:"clock_offset"`
	LockReason  string        `json:"lock_reason,omitempty"`
	// Silent makes the camera answer nothing (a dead link).
	Silent bool `json:"silent,omitempty"`
	// Garbage makes the camera answer with noise instead of frames.
	Garbage bool `json:"garbage,omitempty"`
	// ReplyDelay slows every answer.
	ReplyDelay time.Duration `json:"reply_delay,omitempty"`
	// LieSize is added to every size the camera lists (its index disagrees with its files).
	LieSize int64 `json:"lie_size,omitempty"`
	// Unreadable names recordings whose data cannot be read off the storage.
	Unreadable []string `json:"unreadable,omitempty"`
	// StallAfter makes the first recording stop delivering data after this many bytes
	// (0: never), as a storage link that dies mid-transfer.
	StallAfter int64 `json:"stall_after,omitempty"`
	// GrowsDuringCopy makes the first recording keep growing for a moment once the storage
	// is exposed, as a camera still writing a file would.
	GrowsDuringCopy bool `json:"grows_during_copy,omitempty"`
	// ReadRate caps how fast the camera's storage delivers bytes, per second (0: no cap;
	// USB 2.0 mass storage gives about 35 MB/s).
	ReadRate int64 `json:"read_rate,omitempty"`
	// Layout is how Generate names recordings: "" flat (VID_<time>_<n>.mp4 at the root),
	// LayoutDCF in folders as real cameras keep them on their card.
	Layout string `json:"layout,omitempty"`
	// Files are the camera's recordings, by path relative to its storage root
	// ('/'-separated, camlink.CheckName), each a regular file under Footage.
	Files map[string]FileMeta `json:"files"`
	// Symlinks are symbolic links on the camera's storage (path -> target, as
	// AddSymlink made them), listed as recordings: a hostile or corrupted card.
	Symlinks map[string]string `json:"symlinks,omitempty"`
	// ExtraListing is appended to the camera's listing as is, never checked, with no file
	// behind it: bad names, duplicates, absurd sizes, as a hostile camera would list.
	ExtraListing []camlink.FileEntry `json:"extra_listing,omitempty"`
}

// LayoutDCF names recordings as body cameras keep them on a FAT/exFAT card (DCF):
// DCIM/100MEDIA/<serial>_<time>_<n>.MP4 for video, RECORD/....WAV for audio and
// PHOTO/....JPG for stills.
const LayoutDCF = "dcf"

// FileMeta is what the camera knows of a recording besides its bytes.
type FileMeta struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Mark  string    `json:"mark,omitempty"`
}

// Camera is one simulated body camera: state plus a footage directory.
type Camera struct {
	dir string
	mu  sync.Mutex
	st  CameraState
}

// DefaultCamera returns a healthy camera's state.
func DefaultCamera(serial, officer, unit string) CameraState {
	return CameraState{
		Identity:  camlink.Identity{Serial: serial, Model: "SIM-BC1", Firmware: "1.4.2", Officer: officer, Unit: unit},
		Password:  "000000",
		ChargePct: 35, TempDeciC: 260, Cycles: 120, FullMAh: 2900, DesignMAh: 3000,
		Capacity: 64 << 30, Files: map[string]FileMeta{},
	}
}

// Provision gives the camera its own storage password under the fleet camera secret, as
// central provisions a real camera: camlink.StoragePassword(secret, its serial), the one a
// dock with the same secret (camera_secret_file) derives. Without it the camera keeps the
// fleet-wide default "000000" of cameras not yet provisioned.
func (st *CameraState) Provision(secret []byte) {
	st.Password = camlink.StoragePassword(secret, st.Identity.Serial)
}

// NewCamera creates a camera in dir (made if missing) with state st.
func NewCamera(dir string, st CameraState) (*Camera, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "footage"), 0o755); err != nil {
		return nil, fmt.Errorf("camera %s: %w", st.Identity.Serial, err)
	}
	if st.Files == nil {
		st.Files = map[string]FileMeta{}
	}
	c := &Camera{dir: dir, st: st}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c, c.saveLocked()
}

// OpenCamera loads a camera saved in dir.
func OpenCamera(dir string) (*Camera, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "camera.json"))
	if err != nil {
		return nil, fmt.Errorf("open camera: %w", err)
	}
	c := &Camera{dir: dir}
	if err := json.Unmarshal(b, &c.st); err != nil {
		return nil, fmt.Errorf("open camera %s: %w", dir, err)
	}
	return c, nil
}

func (c *Camera) saveLocked() error {
	b, err := json.MarshalIndent(c.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.dir, "camera.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("save camera: %w", err)
	}
	return os.Rename(tmp, filepath.Join(c.dir, "camera.json"))
}

// Serial is the camera's device serial.
func (c *Camera) Serial() string { return c.st.Identity.Serial }

// Footage is the directory holding the camera's recordings.
func (c *Camera) Footage() string { return filepath.Join(c.dir, "footage") }

// State returns a copy of the camera's state.
func (c *Camera) State() CameraState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Files = make(map[string]FileMeta, len(c.st.Files))
	for k, v := range c.st.Files {
		st.Files[k] = v
	}
	if c.st.Symlinks != nil {
		st.Symlinks = make(map[string]string, len(c.st.Symlinks))
		for k, v := range c.st.Symlinks {
			st.Symlinks[k] = v
		}
	}
	st.ExtraListing = append([]camlink.FileEntry(nil), c.st.ExtraListing...)
	st.Unreadable = append([]string(nil), c.st.Unreadable...)
	return st
}

// Update changes the camera's state under its lock and saves it.
func (c *Camera) Update(f func(*CameraState)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.st)
	return c.saveLocked()
}

// Generate records n recordings of size bytes each (pseudo-random content from seed),
// one every 20 minutes back from end; marks gives the mark reason of some of them by index.
// Their names follow the camera's Layout.
func (c *Camera) Generate(n int, size int64, seed uint64, end time.Time, marks map[int]string) error {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	buf := make([]byte, 1<<20)
	layout, serial := c.State().Layout, c.Serial()
	for i := 0; i < n; i++ {
		start := end.Add(-time.Duration(n-i) * 20 * time.Minute).UTC().Truncate(time.Second)
		name := generatedName(layout, serial, start, i)
		f, err := c.create(name)
		if err != nil {
			return fmt.Errorf("generate %s: %w", name, err)
		}
		for left := size; left > 0; {
			chunk := int64(len(buf))
			if left < chunk {
				chunk = left
			}
			for j := 0; j < int(chunk); j += 8 {
				v := rng.Uint64()
				for k := 0; k < 8 && j+k < int(chunk); k++ {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
			if _, err := f.Write(buf[:chunk]); err != nil {
				f.Close()
				return fmt.Errorf("generate %s: %w", name, err)
			}
			left -= chunk
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("generate %s: %w", name, err)
		}
		if err := c.Update(func(st *CameraState) {
			st.Files[name] = FileMeta{Start: start, End: start.Add(15 * time.Minute), Mark: marks[i]}
		}); err != nil {
			return err
		}
	}
	return nil
}

// generatedName is the i-th generated recording's name: flat, or in the DCF layout
// (every fifth an audio note, every fifth a still, the rest video; 9,999 videos a folder).
func generatedName(layout, serial string, start time.Time, i int) string {
	ts := start.Format("20060102_150405")
	if layout != LayoutDCF {
		return fmt.Sprintf("VID_%s_%04d.mp4", ts, i)
	}
	switch i % 5 {
	case 3:
		return fmt.Sprintf("RECORD/%s_%s_%04d.WAV", serial, ts, i%10000)
	case 4:
		return fmt.Sprintf("PHOTO/%s_%s_%04d.JPG", serial, ts, i%10000)
	}
	return fmt.Sprintf("DCIM/%03dMEDIA/%s_%s_%04d.MP4", 100+i/9999, serial, ts, i%10000)
}

// path is where the recording name lives under Footage.
func (c *Camera) path(name string) string {
	return filepath.Join(c.Footage(), filepath.FromSlash(name))
}

// create makes the file of a new recording, with its folders; name must pass
// camlink.CheckName (a simulated camera files its own recordings properly).
func (c *Camera) create(name string) (*os.File, error) {
	if err := camlink.CheckName(name); err != nil {
		return nil, fmt.Errorf("camera %s: %w", c.Serial(), err)
	}
	if err := os.MkdirAll(filepath.Dir(c.path(name)), 0o755); err != nil {
		return nil, fmt.Errorf("camera %s: %w", c.Serial(), err)
	}
	return os.Create(c.path(name))
}

// Put records one recording of the given bytes under name, replacing any recording of
// that name (as a camera that was formatted and reused the name would).
func (c *Camera) Put(name string, data []byte, meta FileMeta) error {
	f, err := c.create(name)
	if err == nil {
		_, err = f.Write(data)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return c.Update(func(st *CameraState) { st.Files[name] = meta })
}

// PutSparse records a recording of size bytes without writing them: a sparse file (holes
// read as zeros) with 4 KiB of pseudo-random bytes from seed at each end, so a recording
// over 4 GiB costs a few blocks of disk and two such recordings differ.
func (c *Camera) PutSparse(name string, size int64, seed uint64, meta FileMeta) error {
	f, err := c.create(name)
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	random := func(n int64) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	head := min(4096, size)
	_, err = f.WriteAt(random(head), 0)
	if tail := min(4096, size-head); err == nil && tail > 0 {
		_, err = f.WriteAt(random(tail), size-tail)
	}
	if err == nil {
		err = f.Truncate(size)
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return c.Update(func(st *CameraState) { st.Files[name] = meta })
}

// AddSymlink puts a symbolic link on the camera's storage at name, pointing at target (a
// path outside the storage, or inside it), listed as a recording: what a hostile or
// corrupted card may hold. The dock must not follow it.
func (c *Camera) AddSymlink(name, target string) error {
	if err := os.MkdirAll(filepath.Dir(c.path(name)), 0o755); err != nil {
		return fmt.Errorf("symlink %s: %w", name, err)
	}
	if err := os.Symlink(target, c.path(name)); err != nil {
		return fmt.Errorf("symlink %s: %w", name, err)
	}
	return c.Update(func(st *CameraState) {
		if st.Symlinks == nil {
			st.Symlinks = map[string]string{}
		}
		st.Symlinks[name] = target
	})
}

// Files is the camera's listing as it would answer the dock: sorted by name, sizes read
// from its storage (plus LieSize).
func (c *Camera) Files() []camlink.FileEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.filesLocked()
}

// Skipped is a file Load did not take, and why.
type Skipped struct {
	Path string // relative to the loaded directory
	Why  string
}

// Load copies every regular file under src, folders included, onto the camera as
// recordings named by their path relative to src, dated by their modification time. It
// follows no link: symbolic links, devices, FIFOs and names the dock would refuse
// (camlink.CheckName) are skipped and returned. The user's originals are left untouched.
func (c *Camera) Load(src string) ([]Skipped, error) {
	root, err := filepath.EvalSymlinks(src) // the user's own directory may be a link
	if err != nil {
		return nil, fmt.Errorf("load footage: %w", err)
	}
	var skipped []Skipped
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("load footage: %w", err)
		}
		if path == root {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch t := d.Type(); {
		case d.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			skipped = append(skipped, Skipped{rel, "symbolic link, not followed"})
			return nil
		case !t.IsRegular():
			skipped = append(skipped, Skipped{rel, "not a regular file (" + t.String() + ")"})
			return nil
		}
		if err := camlink.CheckName(rel); err != nil {
			skipped = append(skipped, Skipped{rel, err.Error()})
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("load %s: %w", rel, err)
		}
		if err := c.copyIn(path, rel); err != nil {
			return fmt.Errorf("load %s: %w", rel, err)
		}
		end := info.ModTime().UTC()
		return c.Update(func(st *CameraState) {
			st.Files[rel] = FileMeta{Start: end.Add(-time.Minute), End: end}
		})
	})
	return skipped, err
}

// copyIn copies the file at from onto the camera as recording name.
func (c *Camera) copyIn(from, name string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := c.create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// filesLocked is the camera's listing: its recordings and symbolic links sorted by name,
// sizes read from its storage (plus LieSize), then ExtraListing as it is.
func (c *Camera) filesLocked() []camlink.FileEntry {
	out := c.recordingsLocked()
	for name := range c.st.Symlinks {
		info, err := os.Stat(c.path(name)) // what the link leads to, as a careless camera would say
		if err != nil {
			info, err = os.Lstat(c.path(name))
		}
		if err != nil {
			continue
		}
		out = append(out, camlink.FileEntry{Name: name, Size: info.Size() + c.st.LieSize})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return append(out, c.st.ExtraListing...)
}

// recordingsLocked lists the recordings that are regular files on the storage, sorted by
// name.
func (c *Camera) recordingsLocked() []camlink.FileEntry {
	var out []camlink.FileEntry
	for name, m := range c.st.Files {
		info, err := os.Lstat(c.path(name))
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		out = append(out, camlink.FileEntry{Name: name, Size: info.Size() + c.st.LieSize, Start: m.Start, End: m.End, Mark: m.Mark})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// usedLocked sums the recordings' sizes.
func (c *Camera) usedLocked() int64 {
	var n int64
	for _, f := range c.recordingsLocked() {
		n += f.Size
	}
	return n
}
