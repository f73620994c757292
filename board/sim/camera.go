// Package sim owns the simulated dock: fake GPIO lines, cameras behind real
// pseudo-terminals, and their footage on disk. It is never linked into the dock agent.
package sim

import (
	"encoding/json"
	"fmt"
	"io"
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
	ReadRate int64               `json:"read_rate,omitempty"`
	Files    map[string]FileMeta `json:"files"`
}

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
func (c *Camera) Generate(n int, size int64, seed uint64, end time.Time, marks map[int]string) error {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	buf := make([]byte, 1<<20)
	for i := 0; i < n; i++ {
		start := end.Add(-time.Duration(n-i) * 20 * time.Minute).UTC().Truncate(time.Second)
		name := fmt.Sprintf("VID_%s_%04d.mp4", start.Format("20060102_150405"), i)
		f, err := os.Create(filepath.Join(c.Footage(), name))
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

// Put records one recording of the given bytes under name, replacing any recording of
// that name (as a camera that was formatted and reused the name would).
func (c *Camera) Put(name string, data []byte, meta FileMeta) error {
	if err := os.WriteFile(filepath.Join(c.Footage(), name), data, 0o644); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return c.Update(func(st *CameraState) { st.Files[name] = meta })
}

// Files is the camera's listing as it would answer the dock: sorted by name, sizes read
// from its storage (plus LieSize).
func (c *Camera) Files() []camlink.FileEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.filesLocked()
}

// Load copies every regular file of src (not recursing) onto the camera as recordings,
// dated by their modification time. The user's originals are left untouched.
func (c *Camera) Load(src string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("load footage: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("load %s: %w", e.Name(), err)
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(c.Footage(), e.Name())); err != nil {
			return fmt.Errorf("load %s: %w", e.Name(), err)
		}
		end := info.ModTime().UTC()
		if err := c.Update(func(st *CameraState) {
			st.Files[e.Name()] = FileMeta{Start: end.Add(-time.Minute), End: end}
		}); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// files lists the recordings sorted by name, with sizes read from disk.
func (c *Camera) filesLocked() []camlink.FileEntry {
	var out []camlink.FileEntry
	for name, m := range c.st.Files {
		info, err := os.Stat(filepath.Join(c.Footage(), name))
		if err != nil {
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
	for _, f := range c.filesLocked() {
		n += f.Size
	}
	return n
}
