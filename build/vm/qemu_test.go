package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The board's files, from build/vm/fetch-kernel.sh and build/vm/build-rootfs.sh.
type images struct {
	Kernel, Initrd, Rootfs string
}

func vmDir() string {
	if d := os.Getenv("DOCK_VM_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "out", "vm")
}

// findImages returns the kernel, initrd and root file system, or skips saying what is missing.
func findImages(t *testing.T) images {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Skip("qemu-system-aarch64 not installed: run build/vm/build-rootfs.sh (make test-vm-long)")
	}
	d := vmDir()
	im := images{Kernel: filepath.Join(d, "vmlinuz.gz"), Initrd: filepath.Join(d, "initrd.img"), Rootfs: filepath.Join(d, "rootfs.ext4")}
	for _, f := range []string{im.Kernel, im.Initrd, im.Rootfs} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("no emulated board image (%v): run build/vm/build-rootfs.sh (make test-vm-long)", err)
		}
	}
	return im
}

// heavy serialises this machine's heavy runs when DOCK_VM_LOCK names a lock file
// (flock(1)'s): a boot takes it, and it is kept across boots for at most heavyTurn, then
// let go for a moment so others' runs get through between this test's boots.
var heavy struct {
	mu    sync.Mutex
	f     *os.File
	since time.Time
}

const heavyTurn = 8 * time.Minute

// heavyLock takes the lock for a boot, yielding it first when this test held it for its
// turn; it goes with the test process (the next test of the run keeps the turn).
func heavyLock(t *testing.T) {
	path := os.Getenv("DOCK_VM_LOCK")
	if path == "" {
		return
	}
	heavy.mu.Lock()
	defer heavy.mu.Unlock()
	if heavy.f != nil && time.Since(heavy.since) < heavyTurn {
		return
	}
	if heavy.f != nil {
		heavy.f.Close()
		heavy.f = nil
		time.Sleep(3 * time.Second)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatalf("heavy lock: %v", err)
	}
	waited := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("heavy lock %s: %v", path, err)
	}
	if w := time.Since(waited); w > time.Second {
		t.Logf("waited %s for %s", w.Round(time.Second), path)
	}
	heavy.f, heavy.since = f, time.Now()
}

// board is one run of the emulated arm64 dock board: qemu with the root disk, user-mode
// networking, an xHCI controller with the board's hub, QMP for hot-plug and the qemu guest
// agent for the test's hands inside the guest.
type board struct {
	t       *testing.T
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	qmp     *qmp
	qga     *qga
	console string
	started time.Time
}

// bootBoard starts qemu on disk (a copy of the root file system image) and waits until
// the guest agent answers. run names this boot's files in dir.
func bootBoard(t *testing.T, im images, dir, disk, run string) *board {
	t.Helper()
	heavyLock(t)
	b := &board{t: t, dir: dir, console: filepath.Join(dir, run+".console"), exited: make(chan struct{})}
	qmpSock, qgaSock := filepath.Join(dir, run+".qmp"), filepath.Join(dir, run+".qga")
	args := []string{"-M", "virt", "-cpu", "cortex-a57", "-smp", "2", "-m", "1024",
		"-display", "none", "-monitor", "none", "-serial", "file:" + b.console, "-no-reboot",
		"-kernel", im.Kernel, "-initrd", im.Initrd,
		"-append", "root=/dev/vda rw console=ttyAMA0 panic=-1 systemd.show_status=false",
		// The root disk. cache=writeback: qemu writes through the host's page cache and
		// turns the guest's flushes into fsyncs. Killing qemu loses what the guest kernel
		// had not yet written to it (page cache, uncommitted journal), never what qemu had.
		"-drive", "file=" + disk + ",format=raw,if=none,id=root,cache=writeback",
		"-device", "virtio-blk-pci,drive=root",
		"-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-chardev", "socket,id=qga0,path=" + qgaSock + ",server=on,wait=off",
		"-device", "virtio-serial-pci", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
		// The board's USB: an xHCI controller, its root port 1 a hub whose port N+1 is bay N
		// (the guest sees the hub as 1-1, bay N's port as 1-1.<N+1>).
		"-device", "qemu-xhci,id=xhci", "-device", "usb-hub,id=boardhub,bus=xhci.0,port=1",
	}
	b.cmd = exec.Command("qemu-system-aarch64", args...)
	// qemu goes with the test process, however that ends: no orphaned board holds the cores.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	b.cmd.Stderr = &stderr
	b.started = time.Now()
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(b.kill)
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if b.qmp, err = dialQMP(qmpSock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.kill()
			t.Fatalf("qemu's QMP socket: %v\n%s", err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if b.qga, err = dialQGA(ctx, qgaSock, b.exited); err != nil {
		b.kill()
		t.Fatalf("the guest agent never answered: %v\nqemu: %s\nconsole tail:\n%s", err, stderr.String(), b.consoleTail(3000))
	}
	return b
}

// kill is the power cut: SIGKILL of qemu, whatever the guest was doing.
func (b *board) kill() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	if b.qmp != nil {
		b.qmp.close()
	}
	if b.qga != nil {
		b.qga.close()
	}
}

// poweroff shuts the guest down cleanly and waits for qemu to exit.
func (b *board) poweroff() {
	// systemctl, not the guest agent's guest-shutdown: that runs shutdown(8), which
	// schedules the power-off through logind, and the board sometimes never went down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The board may be gone before the guest agent answers; qemu's exit is the check.
	_, _ = b.sh(ctx, "systemctl poweroff --no-block")
	select {
	case <-b.exited:
	case <-time.After(2 * time.Minute):
		b.t.Errorf("the guest did not power off within 2 minutes: killed\nconsole tail:\n%s", b.consoleTail(6000))
	}
	b.kill()
}

func (b *board) consoleTail(n int) string {
	s, _ := os.ReadFile(b.console)
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return string(s)
}

// sh runs a shell command in the guest as root and returns its output; a non-zero exit is
// an error carrying the output.
func (b *board) sh(ctx context.Context, script string) (string, error) {
	return b.qga.exec(ctx, "/bin/sh", "-c", script)
}

// mustSh is sh that fails the test.
func (b *board) mustSh(ctx context.Context, script string) string {
	b.t.Helper()
	out, err := b.sh(ctx, script)
	if err != nil {
		b.t.Fatalf("guest: %s: %v", script, err)
	}
	return out
}

// writeFile writes data to path in the guest.
func (b *board) writeFile(ctx context.Context, path string, data []byte) error {
	return b.qga.writeFile(ctx, path, data)
}

// qga speaks the qemu guest agent's protocol (JSON lines over the virtio port).
type qga struct {
	mu   sync.Mutex
	conn net.Conn
	rd   *bufio.Reader
}

// dialQGA connects and synchronises with the guest agent, retrying while the guest boots.
func dialQGA(ctx context.Context, sock string, exited <-chan struct{}) (*qga, error) {
	var last error
	for id := 1; ; id++ {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-exited:
			return nil, fmt.Errorf("qemu exited (last: %v)", last)
		default:
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			last = err
			time.Sleep(500 * time.Millisecond)
			continue
		}
		q := &qga{conn: conn, rd: bufio.NewReaderSize(conn, 1<<20)}
		if err := q.sync(id); err != nil {
			last = err
			conn.Close()
			continue
		}
		return q, nil
	}
}

// sync is guest-sync-delimited: the answer follows a 0xff byte, so whatever a previous
// client left in the channel is skipped.
func (q *qga) sync(id int) error {
	_ = q.conn.SetDeadline(time.Now().Add(3 * time.Second))
	defer q.conn.SetDeadline(time.Time{})
	req := fmt.Sprintf("\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%d}}\n", id)
	if _, err := q.conn.Write([]byte(req)); err != nil {
		return err
	}
	for {
		line, err := q.rd.ReadBytes('\n')
		if err != nil {
			return err
		}
		if i := bytes.LastIndexByte(line, 0xff); i >= 0 {
			line = line[i+1:]
		}
		var r struct {
			Return *int `json:"return"`
		}
		if json.Unmarshal(line, &r) == nil && r.Return != nil && *r.Return == id {
			return nil
		}
	}
}

func (q *qga) close() { q.conn.Close() }

// call runs one command and returns its "return" value.
func (q *qga) call(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	req, err := json.Marshal(map[string]any{"execute": cmd, "arguments": args})
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = q.conn.SetDeadline(d)
	} else {
		_ = q.conn.SetDeadline(time.Now().Add(time.Minute))
	}
	defer q.conn.SetDeadline(time.Time{})
	if _, err := q.conn.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("qga %s: %w", cmd, err)
	}
	if cmd == "guest-shutdown" {
		return nil, nil // it never answers
	}
	for {
		line, err := q.rd.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("qga %s: %w", cmd, err)
		}
		line = bytes.TrimLeft(line, "\xff")
		var r struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			continue
		}
		if r.Error != nil {
			return nil, fmt.Errorf("qga %s: %s", cmd, r.Error.Desc)
		}
		return r.Return, nil
	}
}

// exec runs path with args in the guest and waits for it.
func (q *qga) exec(ctx context.Context, path string, args ...string) (string, error) {
	ret, err := q.call(ctx, "guest-exec", map[string]any{"path": path, "arg": args, "capture-output": true})
	if err != nil {
		return "", err
	}
	var started struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(ret, &started); err != nil {
		return "", fmt.Errorf("guest-exec: %w", err)
	}
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		ret, err := q.call(ctx, "guest-exec-status", map[string]any{"pid": started.PID})
		if err != nil {
			return "", err
		}
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			Signal   int    `json:"signal"`
			Out      string `json:"out-data"`
			Err      string `json:"err-data"`
		}
		if err := json.Unmarshal(ret, &st); err != nil {
			return "", fmt.Errorf("guest-exec-status: %w", err)
		}
		if st.Exited {
			out, _ := base64.StdEncoding.DecodeString(st.Out)
			errOut, _ := base64.StdEncoding.DecodeString(st.Err)
			all := string(out) + string(errOut)
			if st.ExitCode != 0 || st.Signal != 0 {
				return all, fmt.Errorf("exit %d signal %d: %s", st.ExitCode, st.Signal, strings.TrimSpace(all))
			}
			return all, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(delay):
		}
	}
}

// writeFile writes data to path in the guest, in chunks.
func (q *qga) writeFile(ctx context.Context, path string, data []byte) error {
	ret, err := q.call(ctx, "guest-file-open", map[string]any{"path": path, "mode": "w"})
	if err != nil {
		return err
	}
	var h int
	if err := json.Unmarshal(ret, &h); err != nil {
		return fmt.Errorf("guest-file-open %s: %w", path, err)
	}
	const chunk = 512 << 10
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		if _, err := q.call(ctx, "guest-file-write", map[string]any{"handle": h, "buf-b64": base64.StdEncoding.EncodeToString(data[off:end])}); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if _, err := q.call(ctx, "guest-file-close", map[string]any{"handle": h}); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// qmp speaks the QEMU Machine Protocol: hot-plug and the power cut.
type qmp struct {
	mu   sync.Mutex
	conn net.Conn
	rd   *bufio.Reader
}

func dialQMP(sock string) (*qmp, error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	q := &qmp{conn: conn, rd: bufio.NewReader(conn)}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := q.rd.ReadBytes('\n'); err != nil { // the greeting
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := q.call("qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmp) close() { q.conn.Close() }

// call runs one command, skipping the events that come before its answer.
func (q *qmp) call(cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := map[string]any{"execute": cmd}
	if args != nil {
		m["arguments"] = args
	}
	req, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	_ = q.conn.SetDeadline(time.Now().Add(30 * time.Second))
	defer q.conn.SetDeadline(time.Time{})
	if _, err := q.conn.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		line, err := q.rd.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		var r struct {
			Return json.RawMessage `json:"return"`
			Event  string          `json:"event"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &r); err != nil || r.Event != "" {
			continue
		}
		if r.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s", cmd, r.Error.Desc)
		}
		return r.Return, nil
	}
}
