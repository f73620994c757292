package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"

	"dock/board"
	"dock/hw"
	"dock/hw/camlink"
	"dock/hw/hwtest"
)

// Dock is a simulated dock: per slot, fake GPIO lines registered with periph, a real
// pseudo-terminal whose slave end the agent opens as the camera's serial port, and a
// mount point where a docked camera's storage appears once unlocked.
type Dock struct {
	// Enumeration is how long a seated camera's serial port takes to appear after its
	// presence contact closes: on a real board the camera's USB enumerates and udev names
	// the bay's port after the contact (zero: the port is there as the contact closes).
	// Set it before docking.
	Enumeration time.Duration
	// StorageDelay is how long a camera's storage takes to appear at the bay's mount once
	// the dock unlocked it: on a real board its disk enumerates and udev mounts it after the
	// unlock (zero: at once). Set it before docking.
	StorageDelay time.Duration

	dir   string
	log   *slog.Logger
	Slots []*Slot
	board board.Board
	stop  chan struct{}
	wg    sync.WaitGroup
}

// Slot is one simulated bay.
type Slot struct {
	Index                   int
	Presence, Charge, Fault *hwtest.Pin
	master, slave           *os.File
	tty, mount              string

	mu     sync.Mutex
	cam    *Camera
	ses    *session
	seated int // counts dockings, so a late port belongs to the camera still seated
}

var dockSeq atomic.Int64

// New makes a dock of n slots with its ttys and mounts under dir, and registers its pins.
func New(dir string, n int, log *slog.Logger) (*Dock, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	k := dockSeq.Add(1)
	d := &Dock{dir: dir, log: log, stop: make(chan struct{})}
	d.board = board.Board{Name: "sim", Description: fmt.Sprintf("simulated dock, %d slots", n), Open: d.open}
	for _, sub := range []string{"tty", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("sim dock: %w", err)
		}
	}
	for i := 0; i < n; i++ {
		s := &Slot{Index: i}
		prefix := fmt.Sprintf("SIM%d_S%d_", k, i)
		s.Presence = hwtest.NewPin(prefix+"PRESENCE", 3*i)
		s.Charge = hwtest.NewPin(prefix+"CHARGE", 3*i+1)
		s.Fault = hwtest.NewPin(prefix+"FAULT", 3*i+2)
		for _, p := range []*hwtest.Pin{s.Presence, s.Charge, s.Fault} {
			if err := gpioreg.Register(p); err != nil {
				d.Close()
				return nil, fmt.Errorf("sim dock: register %s: %w", p.Name(), err)
			}
		}
		m, sl, err := pty.Open()
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("sim dock: pty: %w", err)
		}
		if t, err := unix.IoctlGetTermios(int(sl.Fd()), unix.TCGETS); err == nil {
			// Raw from the start, so nothing is echoed before the agent opens the port.
			t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
			t.Oflag &^= unix.OPOST
			t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
			_ = unix.IoctlSetTermios(int(sl.Fd()), unix.TCSETS, t)
		}
		s.master, s.slave = m, sl
		// The bay's port name exists only while a camera is seated, as udev's link does.
		s.tty = filepath.Join(dir, "tty", fmt.Sprintf("slot%d", i))
		_ = os.Remove(s.tty)
		s.mount = filepath.Join(dir, "mnt", fmt.Sprintf("slot%d", i))
		_ = os.Remove(s.mount)
		d.Slots = append(d.Slots, s)
		d.board.Slots = append(d.board.Slots, board.Slot{
			Presence: s.Presence.Name(), Charge: s.Charge.Name(), Fault: s.Fault.Name(),
			Serial: s.tty, Baud: 115200, Mount: s.mount,
		})
		d.wg.Add(1)
		go d.serve(s)
	}
	d.wg.Add(1)
	go d.tick()
	return d, nil
}

// open opens a file on a docked camera's storage as the agent reads it: strictly beneath
// the bay's mount (hw.OpenBeneath: no link followed, regular files only), then read as the
// camera's storage link delivers: no faster than its ReadRate, failing for its Unreadable
// recordings, and stalling after StallAfter bytes of its first recording until closed.
func (d *Dock) open(path string) (fs.File, error) {
	for _, s := range d.Slots {
		name, ok := strings.CutPrefix(path, s.mount+string(filepath.Separator))
		if !ok {
			continue
		}
		f, err := hw.OpenBeneath(s.mount, filepath.ToSlash(name))
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		cam := s.cam
		s.mu.Unlock()
		if cam == nil {
			return f, nil
		}
		st := cam.State()
		cf := &camFile{File: f, rate: float64(st.ReadRate), start: time.Now(), closed: make(chan struct{})}
		cf.unreadable = slices.Contains(st.Unreadable, name)
		if st.StallAfter > 0 {
			cam.mu.Lock()
			files := cam.recordingsLocked()
			cam.mu.Unlock()
			if len(files) > 0 && files[0].Name == name {
				cf.stallAfter = st.StallAfter
			}
		}
		return cf, nil
	}
	return nil, fmt.Errorf("open %s: on no bay's mount", path)
}

// camFile is a file on a camera's storage as its link delivers it.
type camFile struct {
	*os.File
	rate       float64 // bytes per second on average, 0 for no cap
	start      time.Time
	n          int64
	unreadable bool  // every read fails, as on a bad sector
	stallAfter int64 // > 0: after this many bytes, reads wait until Close
	closed     chan struct{}
	closing    sync.Once
}

func (c *camFile) Read(p []byte) (int, error) {
	if c.unreadable {
		return 0, &fs.PathError{Op: "read", Path: c.Name(), Err: syscall.EIO}
	}
	if c.stallAfter > 0 {
		if c.n >= c.stallAfter {
			<-c.closed // the link died mid-transfer: nothing more comes
			return 0, &fs.PathError{Op: "read", Path: c.Name(), Err: os.ErrClosed}
		}
		p = p[:min(int64(len(p)), c.stallAfter-c.n)]
	}
	if c.rate > 0 {
		p = p[:min(len(p), 256<<10)] // small steps: a smooth rate, not bursts
	}
	n, err := c.File.Read(p)
	c.n += int64(n)
	if c.rate > 0 {
		if d := time.Until(c.start.Add(time.Duration(float64(c.n) / c.rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
	}
	return n, err
}

// Close ends the file and releases a read stalled on it.
func (c *camFile) Close() error {
	c.closing.Do(func() { close(c.closed) })
	return c.File.Close()
}

// Board is the dock's definition, in the same form as a real board's.
func (d *Dock) Board() board.Board { return d.board }

// Dock seats cam in slot i: the presence line goes high and the camera answers on the
// slot's serial port.
func (d *Dock) Dock(i int, cam *Camera) error {
	s, err := d.slot(i)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.cam != nil {
		s.mu.Unlock()
		return fmt.Errorf("slot %d already holds %s", i, s.cam.Serial())
	}
	s.cam, s.ses = cam, &session{mount: s.mount, exposeAfter: d.StorageDelay}
	s.seated++
	seated := s.seated
	s.mu.Unlock()
	if d.Enumeration <= 0 {
		if err := s.portAppears(seated); err != nil {
			return err
		}
		s.Presence.Drive(gpio.High)
	} else {
		s.Presence.Drive(gpio.High)
		time.AfterFunc(d.Enumeration, func() {
			if err := s.portAppears(seated); err != nil {
				d.log.Warn("sim: serial port", "slot", i, "err", err)
			}
		})
	}
	d.log.Info("sim: camera docked", "slot", i, "device", cam.Serial())
	return nil
}

// Undock pulls the camera out of slot i: presence low, storage gone, link silent.
func (d *Dock) Undock(i int) (*Camera, error) {
	s, err := d.slot(i)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cam := s.cam
	if s.ses != nil {
		s.ses.end()
	}
	s.cam, s.ses = nil, nil
	_ = os.RemoveAll(s.mount)
	_ = os.Remove(s.tty)
	s.mu.Unlock()
	s.Presence.Drive(gpio.Low)
	if cam != nil {
		d.log.Info("sim: camera undocked", "slot", i, "device", cam.Serial())
	}
	return cam, nil
}

// portAppears names the bay's serial port (the link to the pseudo-terminal), if the
// docking it was made for is still the slot's.
func (s *Slot) portAppears(seated int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cam == nil || s.seated != seated {
		return nil
	}
	_ = os.Remove(s.tty)
	if err := os.Symlink(s.slave.Name(), s.tty); err != nil {
		return fmt.Errorf("sim dock: slot %d port: %w", s.Index, err)
	}
	return nil
}

// Camera returns the camera in slot i, or nil.
func (d *Dock) Camera(i int) *Camera {
	s, err := d.slot(i)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cam
}

func (d *Dock) slot(i int) (*Slot, error) {
	if i < 0 || i >= len(d.Slots) {
		return nil, fmt.Errorf("no slot %d (dock has %d)", i, len(d.Slots))
	}
	return d.Slots[i], nil
}

// serve answers the slot's serial port for whichever camera is docked.
func (d *Dock) serve(s *Slot) {
	defer d.wg.Done()
	var dec camlink.Decoder
	buf := make([]byte, 4096)
	for {
		n, err := s.master.Read(buf)
		if err != nil {
			select {
			case <-d.stop:
				return
			default:
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// EIO while no one holds the slave open; the simulator holds it, so this is rare.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		dec.Write(buf[:n])
		for {
			f, ok := dec.Next()
			if !ok {
				break
			}
			s.mu.Lock()
			cam, ses := s.cam, s.ses
			s.mu.Unlock()
			if cam == nil {
				continue // nobody home: the request goes unanswered
			}
			reply, ok := cam.handle(f, ses, time.Now(), s.Charge.Level() == gpio.High)
			if ok {
				if _, err := s.master.Write(reply); err != nil {
					d.log.Warn("sim: write reply", "slot", s.Index, "err", err)
				}
			}
		}
	}
}

// tick advances charging on slots whose charger is on.
func (d *Dock) tick() {
	defer d.wg.Done()
	const step = time.Second
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		for _, s := range d.Slots {
			s.mu.Lock()
			cam := s.cam
			s.mu.Unlock()
			if cam != nil && s.Charge.Level() == gpio.High {
				cam.chargeStep(step)
			}
		}
	}
}

// Close stops the simulator and unregisters its pins. Cameras keep their state on disk.
func (d *Dock) Close() {
	select {
	case <-d.stop:
		return
	default:
		close(d.stop)
	}
	for _, s := range d.Slots {
		if s.master != nil {
			s.master.Close()
			s.slave.Close()
		}
		_ = os.RemoveAll(s.mount)
		for _, p := range []*hwtest.Pin{s.Presence, s.Charge, s.Fault} {
			_ = gpioreg.Unregister(p.Name())
		}
	}
	d.wg.Wait()
}
