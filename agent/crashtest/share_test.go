package crashtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"dock/agent/simrun"
	"dock/uplink/central"
	"dock/uplink/mqtttest"
)

// TestSharedReceiversSurviveAKill runs two central receivers (the real program) in one
// shared-subscription group on mosquitto, over one store. Both take chunks of the same
// recording; one is killed with SIGKILL mid-transfer; the other completes it: every
// recording arrives once with the camera's hash.
func TestSharedReceiversSurviveAKill(t *testing.T) {
	dir := t.TempDir()
	bin := buildHost(t, filepath.Join(dir, "bin"), "central")
	mq := mqtttest.Start(t, "")
	storeDir := filepath.Join(dir, "central")
	store := central.FileStore{Dir: storeDir}
	key := newCentralKey(t, filepath.Join(dir, "keys"))
	receiver := func(name string) (*exec.Cmd, string) {
		logPath := filepath.Join(dir, name+".log")
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logf.Close() })
		// 256 KiB chunks, window 8, 12 MiB/s: each 24 MiB recording takes two seconds.
		cmd := exec.Command(bin, "-broker", mq.URL, "-store", storeDir, "-client", name, "-share", "receivers",
			"-chunk", "262144", "-window", "8", "-rate", "12582912", "-signing-key", key.File)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, logPath
	}
	_, logA := receiver("central-a")
	b, logB := receiver("central-b")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Both subscribed before the dock speaks (a fixed 300 ms was not always enough on a
	// loaded machine: central-b then joined after the recording's first third and was
	// killed holding none of it).
	for _, lp := range []string{logA, logB} {
		if err := simrun.WaitFor(ctx, filepath.Base(lp)+" subscribed", func() bool {
			b, _ := os.ReadFile(lp)
			return strings.Contains(string(b), `"msg":"mqtt connected"`)
		}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := simrun.Start(ctx, simrun.Options{Dir: filepath.Join(dir, "dock"), Slots: 1, Broker: mq.URL, NoCentral: true, Log: quiet(), CentralKey: key.Private})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	const size = 24 << 20
	cam, want, err := h.NewCamera("CAM-SH", "OF-SH", 3, size, 77, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	var victim string
	var held int64
	if err := simrun.WaitFor(ctx, "a recording a third uploaded", func() bool {
		for id := range want {
			if up, ok, _ := store.Held("dock-sim-1", id); ok && up.Held >= size/3 {
				victim, held = id, up.Held
				return true
			}
		}
		return false
	}); err != nil {
		la, _ := os.ReadFile(logA)
		lb, _ := os.ReadFile(logB)
		t.Fatalf("%v\ncentral-a:\n%s\ncentral-b:\n%s", err, tail(string(la), 3000), tail(string(lb), 3000))
	}
	_ = b.Process.Signal(syscall.SIGKILL)
	_ = b.Wait()
	t.Logf("killed central-b with %s at %d of %d bytes", victim, held, size)

	if err := simrun.WaitCentral(ctx, store, want); err != nil {
		t.Fatal(err)
	}
	stored, err := store.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(want) {
		t.Fatalf("central holds %d recordings, want %d", len(stored), len(want))
	}
	// The interrupted recording's stream was split between the two instances.
	for _, lp := range []string{logA, logB} {
		b, _ := os.ReadFile(lp)
		if !slices.ContainsFunc(strings.Split(string(b), "\n"), func(l string) bool {
			return strings.Contains(l, `"msg":"central: receiving chunks"`) && strings.Contains(l, victim)
		}) {
			t.Errorf("%s never received chunks of %s: the stream was not shared", filepath.Base(lp), victim)
		}
	}
}
