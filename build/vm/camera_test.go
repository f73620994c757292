package vm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"dock/agent/simrun"
	dockboard "dock/board"
	"dock/board/sim"
	"dock/queue"
)

// camera is one simulated body camera for the emulated board: its state and footage on the
// host (board/sim answers its serial link), and a disk image holding the same footage on a
// FAT partition, which the guest sees as the camera's USB storage.
type camera struct {
	cam   *sim.Camera
	img   string
	want  simrun.Footage    // recording id -> sha256
	files map[string]string // recording id -> its file on the camera (host side)
}

// newCamera makes a camera with n recordings of size bytes in the DCF layout (folders, as
// on a real card) and its storage image (writeImage).
func (w *world) newCamera(serial string, n int, size int64, seed uint64) *camera {
	t := w.t
	t.Helper()
	for _, tool := range []string{"mkfs.vfat", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/sbin/" + tool); err != nil {
				t.Skipf("%s not installed (dosfstools, mtools): build/vm/build-rootfs.sh installs them", tool)
			}
		}
	}
	st := sim.DefaultCamera(serial, "OF-"+serial, "unit-vm")
	st.Layout = sim.LayoutDCF
	cam, err := sim.NewCamera(filepath.Join(w.dir, "cameras", serial), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Generate(n, size, seed, time.Now().Add(-time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	c := &camera{cam: cam, files: map[string]string{}}
	if c.want, err = simrun.HashFootage(cam); err != nil {
		t.Fatal(err)
	}
	for _, f := range cam.Files() {
		c.files[queue.RecordingID(serial, f.Name, f.Start, f.Size)] = filepath.Join(cam.Footage(), filepath.FromSlash(f.Name))
	}

	c.img = filepath.Join(w.dir, serial+".img")
	w.writeImage(c)
	return c
}

// addRecordings puts n more recordings on the camera (its next shift) and rewrites its
// storage image to hold what the camera holds now.
func (w *world) addRecordings(c *camera, n int, size int64, seed uint64) {
	t := w.t
	t.Helper()
	before := map[string]bool{}
	for _, f := range c.cam.Files() {
		before[f.Name] = true
	}
	if err := c.cam.Generate(n, size, seed, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	all, err := simrun.HashFootage(c.cam)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c.cam.Files() {
		if before[f.Name] {
			continue
		}
		id := queue.RecordingID(c.cam.Serial(), f.Name, f.Start, f.Size)
		c.files[id] = filepath.Join(c.cam.Footage(), filepath.FromSlash(f.Name))
		c.want[id] = all[id]
	}
	w.writeImage(c)
}

// writeImage writes the camera's storage: an MBR partition table with one FAT32 partition
// (what udev's rules want: a partition, vfat) holding the camera's footage, made with
// mkfs.vfat and mcopy.
func (w *world) writeImage(c *camera) {
	t := w.t
	t.Helper()
	var total int64
	n := 0
	for _, f := range c.cam.Files() {
		total += f.Size
		n++
	}
	// The FAT partition starts at 1 MiB; room for the footage and its clusters' slack.
	const start = 1 << 20
	fatBytes := (total + int64(n)*64<<10 + 40<<20 + 1<<20 - 1) &^ (1<<20 - 1)
	fat := c.img + ".fat"
	mkfs := exec.Command("mkfs.vfat", "-F", "32", "-n", "CAMERA", "-C", fat, fmt.Sprint(fatBytes/1024))
	mkfs.Env = append(os.Environ(), "PATH=/usr/sbin:/sbin:"+os.Getenv("PATH"))
	if out, err := mkfs.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v %s", err, out)
	}
	entries, _ := os.ReadDir(c.cam.Footage())
	args := []string{"-s", "-i", fat}
	for _, e := range entries {
		args = append(args, filepath.Join(c.cam.Footage(), e.Name()))
	}
	mc := exec.Command("mcopy", append(args, "::/")...)
	mc.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := mc.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v %s", err, out)
	}
	body, err := os.ReadFile(fat)
	if err != nil {
		t.Fatal(err)
	}
	mbr := make([]byte, start)
	p := mbr[446:462]
	p[0] = 0x00                            // not bootable
	copy(p[1:4], []byte{0xfe, 0xff, 0xff}) // CHS: use LBA
	p[4] = 0x0c                            // FAT32, LBA
	copy(p[5:8], []byte{0xfe, 0xff, 0xff}) // CHS: use LBA
	binary.LittleEndian.PutUint32(p[8:], start/512)
	binary.LittleEndian.PutUint32(p[12:], uint32(len(body)/512))
	mbr[510], mbr[511] = 0x55, 0xaa
	if err := os.WriteFile(c.img, append(mbr, body...), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(fat)
}

// left counts the recordings still on the camera.
func (c *camera) left() int { return len(c.cam.Files()) }

// docking is one camera seated in a bay: its USB devices on the bay's port and its
// presence line raised.
type docking struct {
	b      *board
	bay    int
	tag    string
	served chan error
	ln     net.Listener
	tap    linkTap
}

// linkTap counts what crosses the camera's serial link, for a failing test to say which
// way a silence was.
type linkTap struct {
	conn         net.Conn
	fromDock     atomic.Int64
	toDock       atomic.Int64
	lastFromDock atomic.Int64 // unix ms
	lastToDock   atomic.Int64
}

func (l *linkTap) Read(p []byte) (int, error) {
	n, err := l.conn.Read(p)
	if n > 0 {
		l.fromDock.Add(int64(n))
		l.lastFromDock.Store(time.Now().UnixMilli())
	}
	return n, err
}

func (l *linkTap) Write(p []byte) (int, error) {
	n, err := l.conn.Write(p)
	l.toDock.Add(int64(n))
	l.lastToDock.Store(time.Now().UnixMilli())
	return n, err
}

func (l *linkTap) String() string {
	ago := func(ms int64) string {
		if ms == 0 {
			return "never"
		}
		return time.Since(time.UnixMilli(ms)).Round(100*time.Millisecond).String() + " ago"
	}
	return fmt.Sprintf("link: %d bytes from the dock (last %s), %d to it (last %s)", l.fromDock.Load(), ago(l.lastFromDock.Load()), l.toDock.Load(), ago(l.lastToDock.Load()))
}

// presenceLine is the gpio-sim offset of bay's presence line (its BCM number).
func presenceLine(bay int) string {
	return strings.TrimPrefix(dockboard.CM4Dock.Slots[bay].Presence, "GPIO")
}

// dock seats c in bay: over QMP, a hub on the bay's port of the board's hub with the
// camera's serial link (usb-serial, its other end this process's simulated camera) on its
// port 1 and its storage (usb-storage, the image read-only) on its port 2; then the
// presence contact closes (gpio-sim pull-up). tag names this docking's devices.
func (w *world) dock(ctx context.Context, b *board, bay int, c *camera, tag string) *docking {
	t := w.t
	t.Helper()
	d := &docking{b: b, bay: bay, tag: tag, served: make(chan error, 1)}
	sock := filepath.Join(w.dir, tag+".sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d.ln = ln
	go func() {
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			d.served <- err
			return
		}
		defer conn.Close()
		d.tap.conn = conn
		d.served <- c.cam.ServeStream(&d.tap, filepath.Join(w.dir, tag+".exposed"), nil)
	}()
	port := fmt.Sprintf("1.%d", bay+1)
	steps := []struct {
		cmd  string
		args map[string]any
	}{
		{"chardev-add", map[string]any{"id": tag + "-link", "backend": map[string]any{"type": "socket",
			"data": map[string]any{"addr": map[string]any{"type": "unix", "data": map[string]any{"path": sock}}, "server": false}}}},
		{"device_add", map[string]any{"driver": "usb-hub", "id": tag + "-hub", "bus": "xhci.0", "port": port}},
		// always-plugged: on the bus from the start, as a camera's port is, whatever qemu
		// thinks of the socket's state (it otherwise attaches the device on its open event).
		{"device_add", map[string]any{"driver": "usb-serial", "id": tag + "-serial", "chardev": tag + "-link", "bus": "xhci.0", "port": port + ".1", "always-plugged": true}},
		{"blockdev-add", map[string]any{"driver": "raw", "node-name": tag + "-disk", "read-only": true,
			"file": map[string]any{"driver": "file", "filename": c.img, "read-only": true}}},
		{"device_add", map[string]any{"driver": "usb-storage", "id": tag + "-storage", "drive": tag + "-disk", "bus": "xhci.0", "port": port + ".2"}},
	}
	for _, s := range steps {
		if _, err := b.qmp.call(s.cmd, s.args); err != nil {
			t.Fatalf("dock %s in bay %d: %v", c.cam.Serial(), bay, err)
		}
	}
	if _, err := b.sh(ctx, "echo pull-up > /run/dock-gpio-sim/sim_gpio"+presenceLine(bay)+"/pull"); err != nil {
		t.Fatalf("presence of bay %d: %v", bay, err)
	}
	return d
}

// undock lifts the camera out: the contact opens and its USB devices go, whatever the
// dock was doing with them.
func (d *docking) undock(ctx context.Context) error {
	var errs []error
	if _, err := d.b.sh(ctx, "echo pull-down > /run/dock-gpio-sim/sim_gpio"+presenceLine(d.bay)+"/pull"); err != nil {
		errs = append(errs, err)
	}
	// Removing the hub unplugs what hangs from it.
	if _, err := d.b.qmp.call("device_del", map[string]any{"id": d.tag + "-hub"}); err != nil {
		errs = append(errs, err)
	}
	// The backends go once the guest has let the devices go.
	deadline := time.Now().Add(20 * time.Second)
	for _, cmd := range []struct{ name, key, id string }{{"blockdev-del", "node-name", d.tag + "-disk"}, {"chardev-remove", "id", d.tag + "-link"}} {
		for {
			_, err := d.b.qmp.call(cmd.name, map[string]any{cmd.key: cmd.id})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	d.ln.Close()
	return errors.Join(errs...)
}
