package crashtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"dock/agent/simrun"
	"dock/board/sim"
	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/mqtttest"
)

// A long shift past 4 GiB (exFAT cards hold such files) on a camera that keeps its footage
// in folders: the real agent (docksim) offloads, encrypts and uploads it with 64-bit sizes
// and offsets end to end, is killed once central holds more than 4 GiB of it and resumes
// from central's offset, and central files it byte for byte, once as the host's own build
// and once as the armv7 build under qemu-user, where int is 32 bits. The recording is a
// sparse file, random at both ends. Minutes: make test-long only.
func TestLongRecordingPast4GiB(t *testing.T) {
	if os.Getenv("DOCK_LONG") == "" {
		t.Skip("moves 4.6 GiB through the dock (and through qemu-user for armv7): make test-long (DOCK_LONG=1)")
	}
	for _, arch := range []string{"host", "armv7"} {
		t.Run(arch, func(t *testing.T) { longRecording(t, arch) })
	}
}

func longRecording(t *testing.T, arch string) {
	var emulator string
	if arch == "armv7" {
		var err error
		if emulator, err = exec.LookPath("qemu-arm-static"); err != nil {
			t.Skip("qemu-arm-static not installed (make deps installs qemu-user-static)")
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "docksim")
	build := exec.Command("go", "build", "-o", bin, "dock/agent/cmd/docksim")
	build.Env = os.Environ()
	if arch == "armv7" {
		build.Env = append(build.Env, "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0")
	} else {
		host, _ := exec.Command("go", "env", "GOHOSTARCH").Output()
		build.Env = append(build.Env, "GOARCH="+strings.TrimSpace(string(host)))
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build docksim for %s: %v\n%s", arch, err, out)
	}
	mq := mqtttest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	store := central.FileStore{Dir: filepath.Join(dir, "central")}
	key := newCentralKey(t, filepath.Join(dir, "keys"))
	rcv, err := central.Start(ctx, central.Options{Broker: mq.URL, ClientID: "central-long-" + arch, Store: store, SigningKey: key.Private}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()

	const long int64 = 4700 << 20 // past 4 GiB
	st := sim.DefaultCamera("CAM-LONG", "OF-L", "unit-1")
	st.Layout = sim.LayoutDCF
	cam, err := sim.NewCamera(filepath.Join(dir, "run", "cameras", "CAM-LONG"), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Generate(2, 100<<10, 77, time.Now().Add(-time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	start13 := time.Now().Add(-13 * time.Hour).UTC().Truncate(time.Second)
	if err := cam.PutSparse("DCIM/100MEDIA/LONG_0001.MP4", long, 78, sim.FileMeta{Start: start13, End: start13.Add(12 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	want, err := simrun.HashFootage(cam)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("camera CAM-LONG\ndock 0 CAM-LONG\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-dir", filepath.Join(dir, "run"), "-broker", mq.URL, "-central=false", "-central-key", key.Public, "-script", script, "-stay", "-poll-ms", "1000"}
	logf, _ := os.Create(filepath.Join(dir, "agent.log"))
	defer logf.Close()
	var cmd *exec.Cmd
	start := func() {
		cmd = exec.Command(bin, args...)
		if emulator != "" {
			cmd = exec.Command(emulator, append([]string{bin}, args...)...)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	start()
	defer func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() }()

	// Killed once central holds more than 4 GiB of the long recording: the upload resumes
	// from central's offset past 4 GiB.
	longID := queue.RecordingID("CAM-LONG", "DCIM/100MEDIA/LONG_0001.MP4", start13, long)
	var killedAt int64
	err = simrun.WaitFor(ctx, "central holding 4 GiB of the long recording", func() bool {
		up, ok, _ := store.Held("dock-sim-1", longID)
		if ok && up.Held > 4<<30 {
			killedAt = up.Held
			return true
		}
		_, filed, _ := store.Filed("dock-sim-1", longID)
		return filed // finished before a poll saw it past 4 GiB: nothing left to resume
	})
	if err == nil && killedAt > 0 {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		start()
		t.Logf("%s: the dock killed with %d bytes of the long recording at central; restarted", arch, killedAt)
	}
	if err == nil {
		err = simrun.WaitCentral(ctx, store, want)
	}
	if err == nil {
		err = simrun.WaitFor(ctx, "the camera emptied", func() bool { return countFiles(cam.Footage()) == 0 })
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
		t.Fatalf("%s: %v\nagent crashes:\n%s\nagent log tail:\n%s", arch, err, crashes(string(log)), tail(string(log), 4000))
	}
	took := time.Since(began)
	t.Logf("%s: %d recordings (one of %d bytes) offloaded, uploaded and filed byte for byte in %s (%.0f MB/s end to end)",
		arch, len(want), long, took.Round(time.Second), float64(long)/took.Seconds()/1e6)
	fmt.Fprintln(os.Stderr) // keep go test's -v output tidy after the agent's log
}
