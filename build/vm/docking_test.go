package vm

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"dock/agent/simrun"
)

// TestDockingOnArm64Board docks cameras on the emulated board as a dock sees them: hot-plugged
// USB serial and storage on a bay's port, named and mounted by the shipped udev rules; one
// is lifted out mid-offload and docked again; every recording reaches central byte for
// byte. Then systemctl stop during an upload: the agent stops within its stop timeout, and
// after start nothing is lost.
func TestDockingOnArm64Board(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	w := newWorld(t, ctx)
	b := bootBoard(t, w.im, w.dir, w.newDisk(), "dock1")
	w.install(ctx, b)
	if _, err := w.waitStatus(ctx, "online"); err != nil {
		t.Fatal(err)
	}

	// A docking: two cameras hot-plugged on bays 0 and 1.
	camA := w.newCamera("VM-CAM-A", 8, 3<<20, 1)
	camB := w.newCamera("VM-CAM-B", 4, 1<<20, 2)
	docked := time.Now()
	dA := w.dock(ctx, b, 0, camA, "a1")
	dB := w.dock(ctx, b, 1, camB, "b1")
	for bay := 0; bay < 2; bay++ {
		checkBay(ctx, t, b, bay)
	}
	// Camera A is lifted out mid-offload: after the dock freed its first recording on the
	// camera, before its last.
	if err := waitUpTo(ctx, 5*time.Minute, "camera A's first recording freed", func() bool { return camA.left() < 8 }); err != nil {
		t.Fatalf("%v\nboard console:\n%s", err, b.consoleTail(8000))
	}
	leftAtUndock := camA.left()
	if err := dA.undock(ctx); err != nil {
		t.Errorf("undock A: %v", err)
	}
	t.Logf("camera A undocked %s after docking with %d of 8 recordings still on it", time.Since(docked).Round(100*time.Millisecond), leftAtUndock)
	if leftAtUndock == 0 {
		t.Errorf("camera A was emptied before it could be undocked: nothing was interrupted")
	}
	gone, _ := b.sh(ctx, "for i in $(seq 50); do [ -e /dev/dock/bay0 ] || findmnt /run/dock/bay0 >/dev/null || { echo gone; exit 0; }; sleep 0.2; done; ls -l /dev/dock; findmnt /run/dock/bay0")
	if strings.TrimSpace(gone) != "gone" {
		t.Errorf("after the undocking, bay 0's port or mount is still there:\n%s", gone)
	}
	if err := waitCentral(ctx, 5*time.Minute, w.store, camB.want); err != nil {
		t.Fatalf("camera B: %v; %s\nboard console:\n%s", err, &dB.tap, b.consoleTail(8000))
	}
	t.Logf("camera B's %d recordings at central, byte for byte, %s after docking", len(camB.want), time.Since(docked).Round(100*time.Millisecond))
	// Docked again, the rest of A comes off.
	dA = w.dock(ctx, b, 0, camA, "a2")
	checkBay(ctx, t, b, 0)
	if err := waitCentral(ctx, 5*time.Minute, w.store, camA.want); err != nil {
		t.Fatalf("camera A: %v; %s\nboard console:\n%s", err, &dA.tap, b.consoleTail(8000))
	}
	for _, c := range []*camera{camA, camB} {
		if err := simrun.WaitFor(ctx, c.cam.Serial()+" emptied", func() bool { return c.left() == 0 }); err != nil {
			t.Errorf("%v: %d recordings left on it", err, c.left())
		}
	}
	t.Logf("cameras A and B: every recording at central byte for byte, %s after the first docking", time.Since(docked).Round(100*time.Millisecond))
	_ = dA.undock(ctx)
	_ = dB.undock(ctx)

	// systemctl stop while the dock uploads: the agent stops within its stop timeout, by
	// itself (no SIGKILL), and after start nothing is lost.
	camC := w.newCamera("VM-CAM-C", 6, 4<<20, 3)
	dC := w.dock(ctx, b, 2, camC, "c1")
	base := w.rcv.BytesReceived()
	if err := simrun.WaitFor(ctx, "an upload of camera C under way", func() bool {
		missing, _, _ := simrun.CheckCentral(w.store, camC.want)
		return w.rcv.BytesReceived() > base && len(missing) > 0
	}); err != nil {
		t.Fatal(err)
	}
	stopStart := time.Now()
	if out, err := b.sh(ctx, "systemctl stop dock-agent.service"); err != nil {
		t.Fatalf("systemctl stop: %v %s", err, out)
	}
	stopped := time.Since(stopStart)
	missing, _, _ := simrun.CheckCentral(w.store, camC.want)
	svc, _ := serviceState(ctx, b)
	t.Logf("systemctl stop during an upload (%d of camera C's %d recordings not yet at central): %s; unit %v", len(missing), len(camC.want), stopped.Round(100*time.Millisecond), svc)
	if stopped > 30*time.Second || svc["Result"] != "success" {
		j, _ := b.sh(ctx, "journalctl -b -u dock-agent.service --no-pager | tail -30")
		t.Errorf("the agent did not stop by itself within its 30 s stop timeout (took %s, result %s)\n%s", stopped, svc["Result"], j)
	}
	if len(missing) == 0 {
		t.Errorf("camera C was at central before the stop: no upload was interrupted")
	}
	if out, err := b.sh(ctx, "systemctl start dock-agent.service"); err != nil {
		t.Fatalf("systemctl start: %v %s", err, out)
	}
	if err := waitCentral(ctx, 5*time.Minute, w.store, camC.want); err != nil {
		t.Fatalf("camera C after the restart: %v; %s\nboard console:\n%s", err, &dC.tap, b.consoleTail(8000))
	}
	if err := simrun.WaitFor(ctx, "camera C emptied", func() bool { return camC.left() == 0 }); err != nil {
		t.Error(err)
	}
	_ = dC.undock(ctx)
	all := len(camA.want) + len(camB.want) + len(camC.want)
	if stored, err := w.store.List(); err != nil || len(stored) != all {
		t.Errorf("central holds %d recordings (%v), want %d: one stored twice or lost", len(stored), err, all)
	}
	if out, err := b.sh(ctx, "dockctl ledger-verify"); err != nil {
		t.Errorf("dockctl ledger-verify: %v %s", err, out)
	} else {
		t.Logf("dockctl ledger-verify: %s", strings.TrimSpace(out))
	}
	b.poweroff()
}

// checkBay waits for the shipped udev rules to have named bay's serial port and mounted
// its storage, and requires the mount to be the camera's FAT partition, read-only,
// nosymfollow, nodev, nosuid, noexec.
func checkBay(ctx context.Context, t *testing.T, b *board, bay int) {
	t.Helper()
	script := fmt.Sprintf(`for i in $(seq 100); do [ -e /dev/dock/bay%[1]d ] && findmnt /run/dock/bay%[1]d >/dev/null && break; sleep 0.2; done
readlink -f /dev/dock/bay%[1]d; findmnt -n -o FSTYPE,OPTIONS /run/dock/bay%[1]d`, bay)
	out, _ := b.sh(ctx, script)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "/dev/ttyUSB") {
		diag, _ := b.sh(ctx, "ls -l /dev/ttyUSB* /dev/dock 2>&1; ls /sys/bus/usb/devices; for d in /sys/class/tty/ttyUSB*; do readlink -f $d; done; dmesg | grep -i -E 'usb|ftdi|tty' | tail -40")
		t.Fatalf("bay %d: no /dev/dock/bay%d on a USB serial port, or no mount: %q\n%s", bay, bay, out, diag)
	}
	fields := strings.Fields(lines[1])
	opts := map[string]bool{}
	if len(fields) == 2 {
		for _, o := range strings.Split(fields[1], ",") {
			opts[o] = true
		}
	}
	if len(fields) != 2 || fields[0] != "vfat" || !opts["ro"] || !opts["nosymfollow"] || !opts["nodev"] || !opts["nosuid"] || !opts["noexec"] {
		t.Errorf("bay %d's storage mounted as %q: want vfat ro,nosymfollow,nodev,nosuid,noexec", bay, lines[1])
	}
	t.Logf("bay %d: port %s, storage %s", bay, lines[0], lines[1])
}
