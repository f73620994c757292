package crashtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// lazyDisk is a lazyfs mount served by its own process (lazyfsd): killing that process
// is the power cut.
type lazyDisk struct {
	Backing, Mount string
	bin            string
	cmd            *exec.Cmd
	out            *bufio.Scanner
	t              *testing.T
}

// mountLazy mounts a lazyfs for a test, or skips it with the reason when FUSE cannot be
// mounted here.
func mountLazy(t *testing.T) *lazyDisk {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("skipped: lazyfs mounts FUSE directly, which needs root")
	}
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		t.Skipf("skipped: no usable /dev/fuse on this machine: %v", err)
	} else {
		f.Close()
	}
	dir := t.TempDir()
	d := &lazyDisk{Backing: filepath.Join(dir, "disk"), Mount: filepath.Join(dir, "mnt"), t: t}
	for _, p := range []string{d.Backing, d.Mount} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.bin = buildHostPkg(t, filepath.Join(dir, "bin"), "dock/agent/crashtest/lazyfsd")
	d.start()
	t.Cleanup(func() { d.kill() })
	return d
}

func (d *lazyDisk) start() {
	d.t.Helper()
	d.cmd = exec.Command(d.bin, "-backing", d.Backing, "-mount", d.Mount)
	d.cmd.Stderr = os.Stderr
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.out = bufio.NewScanner(stdout)
	if !d.out.Scan() || d.out.Text() != "ready" {
		d.t.Fatalf("lazyfsd did not mount: %q %v", d.out.Text(), d.out.Err())
	}
}

// kill stops the server at once and detaches the dead mount.
func (d *lazyDisk) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
	_ = syscall.Unmount(d.Mount, syscall.MNT_DETACH)
}

// PowerCut loses every unsynced byte and mounts the disk again as it is. Processes using
// the mount must be dead first. It returns how many unsynced bytes were lost.
func (d *lazyDisk) PowerCut() (int64, error) {
	_ = d.cmd.Process.Signal(syscall.SIGUSR1)
	var lost int64
	if !d.out.Scan() {
		return 0, fmt.Errorf("lazyfsd: no answer: %v", d.out.Err())
	}
	if _, err := fmt.Sscanf(d.out.Text(), "pending %d", &lost); err != nil {
		return 0, fmt.Errorf("lazyfsd said %q: %w", d.out.Text(), err)
	}
	d.kill()
	d.start()
	return lost, nil
}

// lazyfs keeps exactly what was synced across a power cut, through write(2), truncate
// and a shared writable mapping alike.
func TestLazyFSLosesWhatWasNotSynced(t *testing.T) {
	l := mountLazy(t)
	at := func(name string) string { return filepath.Join(l.Mount, name) }
	write := func(name string, data []byte, sync bool) {
		f, err := os.OpenFile(at(name), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	big := bytes.Repeat([]byte("evidence"), 1024) // 8 KiB
	write("synced", []byte("kept"), true)
	write("unsynced", []byte("lost"), false)
	write("overwritten", []byte("first"), true)
	write("overwritten", []byte("SECOND"), false)
	write("shrunk", big, true)
	if err := os.Truncate(at("shrunk"), 100); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(at("shrunk")); err != nil || st.Size() != 100 {
		t.Fatalf("before the cut, stat by path sees %v %v, want the unsynced size 100", st, err)
	}
	if b, _ := os.ReadFile(at("overwritten")); string(b) != "SECOND" {
		t.Fatalf("before the cut, a reader sees %q, want the last write", b)
	}
	// A mapping written and msynced, and one written without msync.
	mapped := func(name string, msync bool) {
		write(name, make([]byte, 4096), true)
		f, err := os.OpenFile(at(name), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		m, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		copy(m, "mapped")
		if msync {
			if _, _, e := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafePointer(m)), 4096, 4 /* MS_SYNC */); e != 0 {
				t.Fatal(e)
			}
		}
		_ = syscall.Munmap(m)
	}
	mapped("mmap-synced", true)
	mapped("mmap-unsynced", false)

	lost, err := l.PowerCut()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, want string }{
		{"synced", "kept"},
		{"unsynced", ""}, // the file exists (metadata is not lazy), its bytes are gone
		{"overwritten", "first"},
		{"shrunk", string(big)},
		{"mmap-synced", "mapped" + string(make([]byte, 4096-6))},
		{"mmap-unsynced", string(make([]byte, 4096))},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(at(tt.name))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if string(b) != tt.want {
			t.Errorf("%s after the power cut: %d bytes %.12q, want %d bytes %.12q", tt.name, len(b), b, len(tt.want), tt.want)
		}
	}
	if lost == 0 {
		t.Error("the power cut reports no bytes lost")
	}
}

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
