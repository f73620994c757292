package crashtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
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

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// kills is how many SIGKILLs (or power cuts) a run deals: a handful in make test,
// over a hundred in test-long.
func kills() int {
	if os.Getenv("DOCK_LONG") != "" {
		return 120
	}
	return 6
}

// TestSIGKILLLosesNothing kills the agent (docksim: the real agent plus the simulated dock)
// at random moments of offload, commit, camera delete, upload and free, restarts it, and
// checks after every kill that each recording is on its camera, in the dock's spool with
// the camera's hash, or verified at central; at the end that all of them reached central
// exactly once with matching hashes, the cameras are empty and the ledger verifies.
func TestSIGKILLLosesNothing(t *testing.T) { crashLoop(t, false) }

// TestPowerCutLosesNothing is the same with the dock's data directory (Badger and the
// spool) on LazyFS: after every SIGKILL the power is cut too, so every byte the agent had
// not synced is gone before it restarts.
func TestPowerCutLosesNothing(t *testing.T) { crashLoop(t, true) }

func crashLoop(t *testing.T, powerCut bool) {
	dir := t.TempDir()
	var lazy *lazyDisk
	if powerCut {
		lazy = mountLazy(t)
		// The dock's data directory is the mount; cameras, keys and central stay on disk.
		if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(lazy.Mount, filepath.Join(dir, "run", "dock")); err != nil {
			t.Fatal(err)
		}
	}
	bin := buildHost(t, filepath.Join(dir, "bin"), "docksim")
	mq := mqtttest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	store := central.FileStore{Dir: filepath.Join(dir, "central")}
	key := newCentralKey(t, filepath.Join(dir, "keys"))
	rcv, err := central.Start(ctx, central.Options{Broker: mq.URL, ClientID: "central-crash", Store: store, ChunkSize: 64 << 10, Window: 8, SigningKey: key.Private}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()

	// The cameras exist before the first run; every run's script reopens them.
	want := simrun.Footage{}
	cams := map[string]*sim.Camera{}
	files := map[string]string{} // recording id -> the camera file it names
	script := ""
	for i, serial := range []string{"CAM-K1", "CAM-K2", "CAM-K3"} {
		st := sim.DefaultCamera(serial, "OF-"+serial, "unit-1")
		cam, err := sim.NewCamera(filepath.Join(dir, "run", "cameras", serial), st)
		if err != nil {
			t.Fatal(err)
		}
		if err := cam.Generate(8, 1536<<10, uint64(100+i), time.Now().Add(-time.Hour), map[int]string{3: "other"}); err != nil {
			t.Fatal(err)
		}
		fp, err := simrun.HashFootage(cam)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range fp {
			want[k] = v
		}
		cams[serial] = cam
		for _, f := range cam.Files() {
			files[queue.RecordingID(serial, f.Name, f.Start, f.Size)] = filepath.Join(cam.Footage(), filepath.FromSlash(f.Name))
		}
		script += fmt.Sprintf("camera %s\ndock %d %s\n", serial, i, serial)
	}
	scriptPath := filepath.Join(dir, "script")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, _ := os.Create(filepath.Join(dir, "agent.log"))
	defer logf.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-dir", filepath.Join(dir, "run"), "-broker", mq.URL, "-central=false", "-central-key", key.Public, "-script", scriptPath, "-stay", "-poll-ms", "300")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d, %d kills, power cut %v", seed, kills(), powerCut)
	var lost int64
	for i := 0; i < kills(); i++ {
		cmd := start()
		time.Sleep(time.Duration(150+rng.IntN(1500)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if lazy != nil {
			n, err := lazy.PowerCut()
			if err != nil {
				t.Fatal(err)
			}
			lost += n
		}
		checkNothingLost(t, filepath.Join(dir, "run", "dock"), filepath.Join(dir, "run", "keys", "spool.key"), store, files, want)
	}

	// A last run without kills: everything must arrive.
	cmd := start()
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	err = simrun.WaitCentral(wctx, store, want)
	if err == nil {
		err = simrun.WaitFor(wctx, "cameras empty", func() bool {
			for _, c := range cams {
				if n := countFiles(c.Footage()); n > 0 {
					return false
				}
			}
			return true
		})
	}
	wcancel()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
		t.Fatalf("%v\nagent crashes:\n%s\nagent log tail:\n%s", err, crashes(string(log)), tail(string(log), 4000))
	}

	q, err := queue.Open(filepath.Join(dir, "run", "dock"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	n, err := q.VerifyLedger()
	if err != nil {
		t.Fatalf("ledger after %d kills: %v", kills(), err)
	}
	stored, err := store.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(want) || countFiles(filepath.Join(dir, "central", "recordings")) != len(want) {
		t.Fatalf("central holds %d recordings (%d footage files), want %d: stored twice or lost", len(stored), countFiles(filepath.Join(dir, "central", "recordings")), len(want))
	}
	t.Logf("%d kills survived (power cut %v, %d unsynced bytes lost): %d recordings at central, verified; ledger of %d entries intact", kills(), powerCut, lost, len(want), n)
}

// buildHost builds the program agent/cmd/<name> into dir for the machine running the test,
// even when this test itself runs as an ARM binary under qemu-user.
func buildHost(t *testing.T, dir, name string) string {
	t.Helper()
	return buildHostPkg(t, dir, "dock/agent/cmd/"+name)
}

// buildHostPkg builds the program in package pkg into dir for the machine running the test.
func buildHostPkg(t *testing.T, dir, pkg string) string {
	t.Helper()
	name := path.Base(pkg)
	host, err := exec.Command("go", "env", "GOHOSTARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Env = append(os.Environ(), "GOARCH="+strings.TrimSpace(string(host)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// checkNothingLost asserts invariant 1 with the agent dead: each recording is on its
// camera, or recorded in the dock's queue with the camera's hash and its spool file
// present (until verified), or verified at central.
func checkNothingLost(t *testing.T, dockDir, keyFile string, store central.Storage, files map[string]string, want simrun.Footage) {
	t.Helper()
	q, err := queue.Open(dockDir, quiet())
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer q.Close()
	key, err := queue.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	q.Encrypt(key)
	if _, err := q.VerifyLedger(); err != nil {
		t.Fatalf("ledger after SIGKILL: %v", err)
	}
	for id, sum := range want {
		if s, ok, _ := store.Lookup(id); ok && s.SHA256 == sum {
			continue
		}
		r, err := q.Get(id)
		if err == nil {
			if r.SHA256 != sum {
				t.Fatalf("%s in the queue with hash %s, camera had %s", id, r.SHA256, sum)
			}
			if got, err := spoolHash(q, id, r.Size); err != nil || got != sum {
				t.Fatalf("%s is %s in the queue but its spool copy does not read back (sha256 %s, %v) and central lacks it", id, r.State, got, err)
			}
			continue
		}
		got, err := simrun.HashFile(files[id])
		if err != nil || got != sum {
			t.Fatalf("%s LOST: not at central, not in the queue, not on the camera (%v)", id, err)
		}
	}
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

func countFiles(dir string) int {
	n := 0
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".sha256") {
			n++
		}
		return nil
	})
	return n
}

// crashes returns the first lines of every Go panic or fatal error in a log.
func crashes(log string) string {
	var out []string
	lines := strings.Split(log, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "unexpected fault") {
			out = append(out, lines[i:min(i+12, len(lines))]...)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
