package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"dock/agent/simrun"
	"dock/queue"
	"dock/uplink/central"
)

// dockStateAfterCut copies the dock's data directory and spool key out of the board's
// disk image as the next boot will find them: a copy of the image gets its ext4 journal
// replayed (e2fsck -E journal_only, what the kernel does when it mounts it) and debugfs
// copies the files out, so the disk itself is left as the cut left it.
func (w *world) dockStateAfterCut(disk, name string) (dataDir, keyFile string) {
	t := w.t
	t.Helper()
	dir := filepath.Join(w.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	defer os.Remove(img)
	env := append(os.Environ(), "PATH=/usr/sbin:/sbin:"+os.Getenv("PATH"))
	for _, c := range [][]string{
		{"cp", "--sparse=always", disk, img},
		{"e2fsck", "-E", "journal_only", "-y", img},
		{"debugfs", "-R", "rdump /var/lib/dock-agent " + dir, img},
		{"debugfs", "-R", "dump /etc/dock-agent/spool.key " + filepath.Join(dir, "spool.key"), img},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	key := filepath.Join(dir, "spool.key")
	// debugfs writes the copy with its umask; the key is the dock's secret (0600 on the board).
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "dock-agent"), key
}

// nothingLost is the crash test's end check (agent/crashtest checkNothingLost) on the
// dock's state after a power cut: the ledger verifies, and every recording is at central
// with its hash, or in the dock's queue with its hash and a spool copy that reads back, or
// still on its camera, unchanged. It returns how many are at central, in the queue only,
// and on the camera only.
func nothingLost(dataDir, keyFile string, store central.Storage, cams []*camera) (atCentral, inQueue, onCamera int, err error) {
	q, err := queue.Open(dataDir, quiet())
	if err != nil {
		return 0, 0, 0, fmt.Errorf("open the dock's queue after the cut: %w", err)
	}
	defer q.Close()
	key, err := queue.LoadKey(keyFile)
	if err != nil {
		return 0, 0, 0, err
	}
	q.Encrypt(key)
	if _, err := q.VerifyLedger(); err != nil {
		return 0, 0, 0, fmt.Errorf("ledger after the cut: %w", err)
	}
	for _, c := range cams {
		for id, sum := range c.want {
			if s, ok, _ := store.Lookup(id); ok && s.SHA256 == sum {
				atCentral++
				continue
			}
			if r, err := q.Get(id); err == nil {
				if r.SHA256 != sum {
					return 0, 0, 0, fmt.Errorf("%s in the queue with hash %s, the camera had %s", id, r.SHA256, sum)
				}
				if got, err := spoolHash(q, id, r.Size); err != nil || got != sum {
					return 0, 0, 0, fmt.Errorf("%s is %s in the queue but its spool copy does not read back (sha256 %s, %v) and central lacks it", id, r.State, got, err)
				}
				inQueue++
				continue
			}
			got, err := simrun.HashFile(c.files[id])
			if err != nil || got != sum {
				return 0, 0, 0, fmt.Errorf("%s LOST: not at central, not in the queue, not on the camera (%v)", id, err)
			}
			onCamera++
		}
	}
	return atCentral, inQueue, onCamera, nil
}

// spoolHash hashes the dock's copy of a recording as the uplink would read it.
func spoolHash(q *queue.Store, id string, size int64) (string, error) {
	f, err := q.Open(id)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// powerCuts is how many times TestPowerCutsOnArm64Board cuts the power (DOCK_VM_CUTS).
func powerCuts() int {
	if n, err := strconv.Atoi(os.Getenv("DOCK_VM_CUTS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// TestPowerCutsOnArm64Board cuts the emulated board's power (SIGKILL of qemu: whatever the
// guest kernel had not written to its virtual disk is gone, page cache and uncommitted ext4
// journal alike) at random moments of offload and upload, and at the moment a camera's
// recording is freed, and boots it again, each time. After every cut the dock's state as
// the next boot finds it must lose nothing (nothingLost); in the end every recording is at
// central exactly once, byte for byte, the cameras are empty and the ledger verifies. The
// disk model: what qemu had written to the image survives (it sits in the host's page
// cache); the virtual disk has no volatile cache of its own.
func TestPowerCutsOnArm64Board(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	w := newWorld(t, ctx)
	disk := w.newDisk()
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("DOCK_SEED"), 10, 64); err == nil {
		seed = s
	}
	rng := rand.New(rand.NewPCG(seed, 19))
	t.Logf("seed %d (DOCK_SEED replays), %d power cuts", seed, powerCuts())

	b := bootBoard(t, w.im, w.dir, disk, "boot0")
	w.install(ctx, b)
	if _, err := w.waitStatus(ctx, "online"); err != nil {
		t.Fatal(err)
	}
	cams := []*camera{
		w.newCamera("VM-PC-0", 4, 2<<20, seed+1),
		w.newCamera("VM-PC-1", 4, 1<<20, seed+2),
		w.newCamera("VM-PC-2", 3, 3<<20, seed+3),
	}
	var boots []time.Duration
	moments := map[string]int{}
	for cut := 0; cut < powerCuts(); cut++ {
		if cut > 0 {
			// The officers' next shift: new recordings on every camera, so every boot
			// finds offload and upload to do.
			for i, c := range cams {
				w.addRecordings(c, 2, int64(2+rng.IntN(4))<<20, seed+uint64(100*cut+i))
			}
			b = bootBoard(t, w.im, w.dir, disk, fmt.Sprintf("boot%d", cut))
			boots = append(boots, time.Since(b.started))
			if _, err := b.sh(ctx, "systemctl start dock-gpio-sim.service"); err != nil {
				t.Fatalf("boot %d: the board's lines: %v", cut, err)
			}
		}
		// The cameras sit in their bays as the board comes up.
		freed := make([]int, len(cams))
		for i, c := range cams {
			freed[i] = c.left()
			w.dock(ctx, b, i, c, fmt.Sprintf("cut%d-cam%d", cut, i))
		}
		docked := time.Now()
		if cut%3 != 0 {
			for i := range cams {
				checkBay(ctx, t, b, i)
			}
		}
		base := w.rcv.BytesReceived()
		var moment string
		switch cut % 3 {
		case 0: // anywhere in the boot's work from the docking on: the agent starting,
			// waiting for the ports and the storage, copying, uploading
			time.Sleep(time.Until(docked.Add(time.Duration(rng.IntN(15000)) * time.Millisecond)))
			moment = "random"
		case 1: // as a camera's recording is freed: the dock's copy must be durable by then
			moment = "camera-free"
			_ = waitUpTo(ctx, 90*time.Second, "a recording freed", func() bool {
				for i, c := range cams {
					if c.left() < freed[i] {
						return true
					}
				}
				return false
			})
		case 2: // while central receives an upload
			moment = "upload"
			_ = waitUpTo(ctx, 90*time.Second, "an upload", func() bool { return w.rcv.BytesReceived() > base })
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
		}
		sinceBoot := time.Since(b.started)
		b.kill()
		moments[moment]++
		data, key := w.dockStateAfterCut(disk, fmt.Sprintf("cut%d", cut))
		atCentral, inQueue, onCamera, err := nothingLost(data, key, w.store, cams)
		if err != nil {
			t.Fatalf("power cut %d (%s, %s after qemu start): %v\nconsole tail:\n%s", cut+1, moment, sinceBoot.Round(100*time.Millisecond), err, b.consoleTail(2000))
		}
		t.Logf("power cut %2d (%-11s %5.1fs after qemu start): %2d recordings at central, %2d in the dock's queue only, %2d on their cameras only",
			cut+1, moment+",", sinceBoot.Seconds(), atCentral, inQueue, onCamera)
	}

	// The last boot, left alone: everything reaches central and leaves the cameras.
	b = bootBoard(t, w.im, w.dir, disk, "final")
	boots = append(boots, time.Since(b.started))
	if _, err := b.sh(ctx, "systemctl start dock-gpio-sim.service"); err != nil {
		t.Fatal(err)
	}
	want := simrun.Footage{}
	for i, c := range cams {
		w.dock(ctx, b, i, c, fmt.Sprintf("final-cam%d", i))
		for id, sum := range c.want {
			want[id] = sum
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Minute)
	defer wcancel()
	if err := simrun.WaitCentral(wctx, w.store, want); err != nil {
		j, _ := b.sh(ctx, "journalctl -u dock-agent.service --no-pager | tail -60")
		t.Fatalf("after %d power cuts: %v\nagent journal:\n%s", powerCuts(), err, j)
	}
	for _, c := range cams {
		if err := waitUpTo(ctx, 3*time.Minute, c.cam.Serial()+" emptied", func() bool { return c.left() == 0 }); err != nil {
			t.Errorf("%v: %d left", err, c.left())
		}
	}
	out, err := b.sh(ctx, "dockctl ledger-verify")
	if err != nil {
		t.Errorf("dockctl ledger-verify after %d power cuts: %v %s", powerCuts(), err, out)
	}
	restarts, _ := b.sh(ctx, "journalctl --no-pager -o cat -u dock-agent.service | grep -c -i -E 'watchdog|panic' || true")
	b.poweroff()
	stored, err := w.store.List()
	if err != nil || len(stored) != len(want) {
		t.Fatalf("central holds %d recordings (%v), want %d: one stored twice or lost", len(stored), err, len(want))
	}
	data, key := w.dockStateAfterCut(disk, "final")
	if _, _, _, err := nothingLost(data, key, w.store, cams); err != nil {
		t.Fatal(err)
	}
	var sum time.Duration
	for _, d := range boots {
		sum += d
	}
	t.Logf("%d power cuts (%v) survived: %d recordings at central exactly once, byte for byte; cameras empty; ledger verifies (%s); boots to the guest agent averaged %s; watchdog/panic lines in the agent's journal: %s",
		powerCuts(), moments, len(want), strings.TrimSpace(out), (sum / time.Duration(len(boots))).Round(100*time.Millisecond), strings.TrimSpace(restarts))
}

// waitCentral is simrun.WaitCentral bounded by d.
func waitCentral(ctx context.Context, d time.Duration, store central.Storage, want simrun.Footage) error {
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return simrun.WaitCentral(c, store, want)
}

// waitUpTo is simrun.WaitFor bounded by d.
func waitUpTo(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return simrun.WaitFor(c, what, cond)
}
