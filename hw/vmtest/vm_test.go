package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"dock/board/sim"
)

// deadline bounds a whole boot: qemu is killed if the guest has not powered off by then.
const deadline = 90 * time.Second

// kernelDir is where build/vm/fetch-kernel.sh leaves the kernel and modules.
func kernelDir() string {
	if d := os.Getenv("DOCK_VM_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "build", "out", "vm")
}

// TestDockBoardInVM boots the guest (guestinit) on an arm64 kernel with gpio-sim, three
// cameras on emulated 16550 UARTs whose host ends are simulated cameras, and requires every
// check of Checks to pass and the guest to power off within the deadline.
func TestDockBoardInVM(t *testing.T) {
	if runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		t.Skipf("the emulated board runs from a linux/amd64 host, not %s/%s (qemu-user runs of the suite skip it)", runtime.GOOS, runtime.GOARCH)
	}
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Skip("qemu-system-aarch64 not installed: run build/vm/fetch-kernel.sh (make test-vm)")
	}
	kdir := kernelDir()
	var mods [][]byte
	for _, f := range []string{"vmlinuz.gz", "configfs.ko.xz", "gpio-sim.ko.xz"} {
		b, err := os.ReadFile(filepath.Join(kdir, f))
		if err != nil {
			t.Skipf("no arm64 kernel with gpio-sim (%v): run build/vm/fetch-kernel.sh (make test-vm)", err)
		}
		if f != "vmlinuz.gz" {
			mods = append(mods, b)
		}
	}
	abi, _ := os.ReadFile(filepath.Join(kdir, "abi"))
	tmp := t.TempDir()

	// The guest's /init, built for the board.
	start := time.Now()
	initPath := filepath.Join(tmp, "init")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", initPath, "./guestinit")
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build guest init: %v\n%s", err, out)
	}
	initBin, err := os.ReadFile(initPath)
	if err != nil {
		t.Fatal(err)
	}
	var rd bytes.Buffer
	err = WriteInitramfs(&rd, []File{
		{Name: "dev", Mode: ModeDir | 0o755},
		{Name: "dev/console", Mode: ModeChar | 0o600, Major: 5, Minor: 1},
		{Name: "proc", Mode: ModeDir | 0o755},
		{Name: "sys", Mode: ModeDir | 0o755},
		{Name: "lib", Mode: ModeDir | 0o755},
		{Name: "lib/modules", Mode: ModeDir | 0o755},
		{Name: "lib/modules/configfs.ko.xz", Mode: ModeFile | 0o644, Data: mods[0]},
		{Name: "lib/modules/gpio-sim.ko.xz", Mode: ModeFile | 0o644, Data: mods[1]},
		{Name: "init", Mode: ModeFile | 0o755, Data: initBin},
	})
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(tmp, "initrd.gz")
	if err := os.WriteFile(initrd, rd.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("guest built in %s: init %.1f MB, initramfs %.1f MB; kernel %s", time.Since(start).Round(time.Millisecond),
		float64(len(initBin))/(1<<20), float64(rd.Len())/(1<<20), strings.TrimSpace(string(abi)))

	// The cameras: ttyS0 healthy but noisy, ttyS1 garbage only, ttyS2 silent.
	cams := []struct {
		serial string
		setup  func(*sim.CameraState)
		noisy  bool
	}{
		{"VM-CAM-0", func(*sim.CameraState) {}, true},
		{"VM-CAM-1", func(s *sim.CameraState) { s.Garbage = true }, false},
		{"VM-CAM-2", func(s *sim.CameraState) { s.Silent = true }, false},
	}
	args := []string{"-M", "virt", "-cpu", "cortex-a57", "-smp", "2", "-m", "512", "-nographic", "-no-reboot", "-nic", "none",
		"-kernel", filepath.Join(kdir, "vmlinuz.gz"), "-initrd", initrd, "-append", "console=ttyAMA0 panic=-1 quiet"}
	served := make(chan error, len(cams))
	for i, c := range cams {
		st := sim.DefaultCamera(c.serial, "officer-1", "unit-7")
		c.setup(&st)
		cam, err := sim.NewCamera(filepath.Join(tmp, c.serial), st)
		if err != nil {
			t.Fatal(err)
		}
		if err := cam.Generate(3, 64<<10, uint64(i+1), time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(tmp, fmt.Sprintf("cam%d.sock", i))
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		noisy := c.noisy
		mount := filepath.Join(tmp, c.serial+".mount")
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			defer conn.Close()
			var rw net.Conn = conn
			if noisy {
				rw = noisyConn{conn}
			}
			served <- cam.ServeStream(rw, mount, nil)
		}()
		// Fixed PCI slots: the guest's ttyS<i> is camera i.
		args = append(args, "-chardev", fmt.Sprintf("socket,id=cam%d,path=%s,server=off", i, sock),
			"-device", fmt.Sprintf("pci-serial,chardev=cam%d,addr=%d", i, 0x10+i))
	}

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Stdin = nil
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	boot := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	results := map[string]string{}
	var order []string
	var firstLine time.Duration
	done := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if firstLine == 0 && strings.HasPrefix(line, "guest:") {
			firstLine = time.Since(boot)
		}
		t.Logf("[%6.2fs] %s", time.Since(boot).Seconds(), line)
		if verdict, rest, ok := strings.Cut(line, " "); ok && (verdict == "PASS" || verdict == "FAIL") {
			name, _, _ := strings.Cut(rest, " ")
			if _, dup := results[name]; !dup {
				order = append(order, name)
			}
			if results[name] != "FAIL" {
				results[name] = verdict
			}
		}
		if strings.Contains(line, Done) {
			done = true
		}
	}
	err = cmd.Wait()
	total := time.Since(boot)
	if ctx.Err() != nil {
		t.Fatalf("the guest did not power off within %s: qemu killed\n%s", deadline, stderr.String())
	}
	if err != nil {
		t.Errorf("qemu: %v\n%s", err, stderr.String())
	}
	if !done {
		t.Errorf("the guest never printed %q: it crashed or stopped early", Done)
	}
	t.Logf("boot to /init %s, start to power-off %s", firstLine.Round(time.Millisecond), total.Round(time.Millisecond))
	for _, name := range Checks {
		switch results[name] {
		case "PASS":
		case "FAIL":
			t.Errorf("check %s failed in the guest", name)
		default:
			t.Errorf("check %s never reported", name)
		}
	}
	for _, name := range order {
		if !contains(Checks, name) {
			t.Errorf("the guest reported %s %s, a check the host does not know", results[name], name)
		}
	}
	for range cams {
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, net.ErrClosed) {
				t.Logf("camera server: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("a camera server still runs after qemu exited")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// noisyConn puts a few bytes of noise before everything the camera writes, as a long
// cable picking up interference between frames.
type noisyConn struct{ net.Conn }

func (c noisyConn) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write([]byte("\x00\xff\xd0\x13noise")); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
