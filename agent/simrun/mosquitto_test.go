package simrun

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"dock/board/sim"
	"dock/queue"
	"dock/uplink/mqtttest"
)

// The whole flow against a real mosquitto broker, with pseudo-terminal cameras, a camera
// pulled at random moments of its offload, and the broker restarted mid-upload.
func TestEndToEndMosquitto(t *testing.T) {
	mq := mqtttest.Start(t, "")
	ctx, h := startHarness(t, 90*time.Second, Options{Dir: t.TempDir(), Slots: 3, Broker: mq.URL, Log: testLog(t)})
	want := Footage{}
	add := func(f Footage) {
		for k, v := range f {
			want[k] = v
		}
	}
	a, fa, err := h.NewCamera("CAM-A", "OF-A", 4, 2<<20, 11, map[int]string{0: "mass-incident"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	add(fa)
	f0 := a.Files()[0] // the first recording, marked mass-incident
	heldID := queue.RecordingID("CAM-A", f0.Name, f0.Start, f0.Size)
	b, fb, err := h.NewCamera("CAM-B", "OF-B", 3, 1<<20, 12, nil, func(s *sim.CameraState) { s.FullMAh = 1200 })
	if err != nil {
		t.Fatal(err)
	}
	add(fb)
	c, fc, err := h.NewCamera("CAM-C", "OF-C", 6, 4<<20, 13, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	add(fc)

	// CAM-C is pulled out at varying moments of its offload and docked again.
	for _, d := range []time.Duration{0, 30 * time.Millisecond, 80 * time.Millisecond, 150 * time.Millisecond} {
		if err := h.Dock.Dock(2, c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d)
		if _, err := h.Dock.Undock(2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		assertNothingLost(t, h, c, fc)
	}
	if err := h.Dock.Dock(0, a); err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(1, b); err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(2, c); err != nil {
		t.Fatal(err)
	}
	// Restart the broker while uploads are under way.
	time.Sleep(150 * time.Millisecond)
	mq.Restart(500 * time.Millisecond)

	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		st, _ := h.Store.Stats()
		t.Fatalf("%v (dock queue %+v)", err, st)
	}
	if err := WaitFor(ctx, "cameras empty, CAM-B locked", func() bool {
		return len(a.State().Files)+len(b.State().Files)+len(c.State().Files) == 0 && b.State().LockReason != ""
	}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "battery alert at central", func() bool {
		_, ok := h.Central.Alerts()["dock-sim-1/CAM-B/battery-worn"]
		return ok
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := h.Store.VerifyLedger(); err != nil {
		t.Fatalf("ledger after %d entries: %v", n, err)
	}
	// The held recording stays on the dock until central releases it.
	held := heldID
	r, err := h.Store.Get(held)
	if err != nil || r.State != queue.Verified || r.Hold != "mass-incident" {
		t.Fatalf("held recording %+v, %v", r, err)
	}
}

// assertNothingLost checks invariant 1 for one camera: every recording is on the camera
// or durable in the spool with the camera's hash, and no record points at a missing file.
func assertNothingLost(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
	t.Helper()
	onCam := map[string]bool{}
	for _, f := range cam.Files() {
		onCam[queue.RecordingID(cam.Serial(), f.Name, f.Start, f.Size)] = true
	}
	for id, sum := range want {
		r, err := h.Store.Get(id)
		if err != nil {
			if !onCam[id] {
				t.Fatalf("%s lost: not on camera, not in the queue (%v)", id, err)
			}
			continue
		}
		if r.SHA256 != sum {
			t.Fatalf("%s spooled with hash %s, camera had %s", id, r.SHA256, sum)
		}
		if r.State == queue.Spooled || r.State == queue.Uploading {
			if _, err := os.Stat(filepath.Join(h.Store.Spool().Dir(), id+".rec")); err != nil {
				t.Fatalf("%s recorded but its spool file is missing", id)
			}
		}
	}
	left, _ := os.ReadDir(filepath.Join(h.Store.Spool().Dir(), "tmp"))
	for _, e := range left {
		// A copy may be in flight right now; it must not be a record.
		if _, err := h.Store.Get(e.Name()); err == nil {
			t.Fatalf("partial file %s has a record", e.Name())
		}
	}
}
