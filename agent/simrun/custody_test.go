package simrun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"dock/board/sim"
	"dock/health"
	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/wire"
)

// copyKey is one camera file version as custody follows it: whose, what, which bytes.
type copyKey struct{ device, name, sha string }

// filedAtCentral counts central's verified recordings by camera, name and hash, and
// checks each stored file's bytes against the hash central recorded.
func filedAtCentral(t *testing.T, store central.Storage) map[copyKey]int {
	t.Helper()
	list, err := store.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[copyKey]int{}
	for _, s := range list {
		got, err := HashFile(s.Path)
		if err != nil || got != s.SHA256 {
			t.Errorf("central's copy of %s/%s: hash %s, file %s (%v)", s.Meta.Device, s.Meta.Name, s.SHA256, got, err)
		}
		out[copyKey{s.Meta.Device, s.Meta.Name, s.SHA256}]++
	}
	return out
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// Two cameras whose serial and file name run together the same way ("CAMA" + "X_Y.mp4",
// "CAMA_X" + "Y.mp4"), files of one size and start but different bytes: each reaches
// central under its own camera, and neither camera's file is deleted without a copy.
func TestNamesThatRunTogetherKeepTheirOwnCustody(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 2, Log: testLog(t)})
	meta := fileMeta()
	a, _ := sim.NewCamera(t.TempDir(), sim.DefaultCamera("CAMA", "OF-A", "unit-1"))
	b, _ := sim.NewCamera(t.TempDir(), sim.DefaultCamera("CAMA_X", "OF-B", "unit-1"))
	first, second := randomBytes(300_000, 1), randomBytes(300_000, 2)
	if err := errors.Join(a.Put("X_Y.mp4", first, meta), b.Put("Y.mp4", second, meta)); err != nil {
		t.Fatal(err)
	}
	want := map[copyKey]int{
		{"CAMA", "X_Y.mp4", sum(first)}:  1,
		{"CAMA_X", "Y.mp4", sum(second)}: 1,
	}
	_ = h.Dock.Dock(0, a)
	waitCameraEmpty(ctx, t, a)
	_ = h.Dock.Dock(1, b)
	waitCameraEmpty(ctx, t, b)
	waitFiled(ctx, t, h, want)
}

// A camera formatted between dockings reuses a name for a file of the same size and start
// but other bytes: the second file is copied and reaches central beside the first; the
// dock never deletes it on the strength of the first one's copy.
func TestReusedNameAfterFormatIsCopiedAgain(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	meta := fileMeta()
	a, _ := sim.NewCamera(t.TempDir(), sim.DefaultCamera("CAM-F", "OF-F", "unit-1"))
	first, second := randomBytes(300_000, 1), randomBytes(300_000, 2)
	if err := a.Put("VID_0001.mp4", first, meta); err != nil {
		t.Fatal(err)
	}
	want := map[copyKey]int{{"CAM-F", "VID_0001.mp4", sum(first)}: 1}
	_ = h.Dock.Dock(0, a)
	waitCameraEmpty(ctx, t, a)
	waitFiled(ctx, t, h, want)

	_, _ = h.Dock.Undock(0)
	if err := a.Put("VID_0001.mp4", second, meta); err != nil {
		t.Fatal(err)
	}
	want[copyKey{"CAM-F", "VID_0001.mp4", sum(second)}] = 1
	time.Sleep(500 * time.Millisecond) // the removal is seen (debounce)
	_ = h.Dock.Dock(0, a)
	waitCameraEmpty(ctx, t, a)
	waitFiled(ctx, t, h, want)
}

func fileMeta() sim.FileMeta {
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	return sim.FileMeta{Start: start, End: start.Add(10 * time.Minute)}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// waitCameraEmpty waits until the dock has taken every recording off cam.
func waitCameraEmpty(ctx context.Context, t *testing.T, cam *sim.Camera) {
	t.Helper()
	if err := WaitFor(ctx, cam.Serial()+" emptied", func() bool { return len(cam.State().Files) == 0 }); err != nil {
		t.Fatal(err)
	}
}

// waitFiled waits until central holds exactly want, and fails naming what is missing or
// filed more than once.
func waitFiled(ctx context.Context, t *testing.T, h *Harness, want map[copyKey]int) {
	t.Helper()
	var got map[copyKey]int
	err := WaitFor(ctx, "central to file every version once", func() bool {
		got = filedAtCentral(t, h.Central.Store())
		for k, n := range want {
			if got[k] != n {
				return false
			}
		}
		return true
	})
	if err != nil {
		for k, n := range want {
			if got[k] != n {
				t.Errorf("%s %q sha256 %.12s: %d at central, want %d", k.device, k.name, k.sha, got[k], n)
			}
		}
		t.Fatal(fmt.Errorf("custody: %w", err))
	}
	for k, n := range got {
		if want[k] == 0 {
			t.Errorf("central holds %s %q sha256 %.12s (%d times) that no camera had", k.device, k.name, k.sha, n)
		}
	}
}

// A dock whose clock reads 1970 (a board without a battery-backed clock, booted offline)
// does not set the camera's clock, still offloads, stamps the recordings clock unverified
// and raises clock-unverified for maintenance.
func TestImplausibleDockClockSetsNoCameraClock(t *testing.T) {
	epoch := time.Unix(0, 0).UTC()
	booted := time.Now()
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t),
		Clock: func() time.Time { return epoch.Add(time.Since(booted)) }})
	cam, want, err := h.NewCamera("CAM-T", "OF-T", 2, 50_000, 5, nil, func(s *sim.CameraState) { s.ClockOffset = 3 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(0, cam)
	waitCameraEmpty(ctx, t, cam)
	if off := cam.State().ClockOffset; off != 3*time.Second {
		t.Errorf("camera clock moved by %s: set from a dock clock in 1970", off-3*time.Second)
	}
	for id := range want {
		r, err := h.Store.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if !r.ClockUnverified {
			t.Errorf("%s not stamped clock unverified", id)
		}
	}
	if f := faultOf(h, "clock-unverified"); f.ID == "" || !strings.Contains(f.Detail, "1970") {
		t.Errorf("clock-unverified fault: %+v", f)
	}
	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		t.Fatal(err)
	}
	list, err := h.Central.Store().List()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if !s.Meta.ClockUnverified {
			t.Errorf("central filed %s without clock_unverified", s.Meta.ID)
		}
	}
}

// beginRefusing is central's store refusing every begin of one recording until fixed.
type beginRefusing struct {
	central.Storage
	id    string
	fixed atomic.Bool
}

func (b *beginRefusing) Begin(dock, transfer string, meta wire.RecordingMeta, size int64, sha string) (central.Upload, error) {
	if meta.ID == b.id && !b.fixed.Load() {
		return central.Upload{}, errors.New("refused by the test")
	}
	return b.Storage.Begin(dock, transfer, meta, size, sha)
}

// A recording central keeps refusing raises upload-stuck naming it, while every other
// recording of the camera reaches central; once central takes it, the fault clears.
func TestStuckUploadRaisesAFaultAndClears(t *testing.T) {
	dir := t.TempDir()
	ctx, h := startHarness(t, 120*time.Second, Options{Dir: dir, Slots: 1, NoCentral: true, Log: testLog(t)})
	cam, want, err := h.NewCamera("CAM-U", "OF-U", 4, 40_000, 9, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f0 := cam.Files()[0]
	bad := queue.RecordingID("CAM-U", f0.Name, f0.Start, f0.Size)
	store := &beginRefusing{Storage: central.FileStore{Dir: filepath.Join(dir, "central")}, id: bad}
	rcv, err := central.Start(ctx, central.Options{Broker: h.BrokerURL, ClientID: "central-stuck", Store: store, SigningKey: h.CentralKey}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	_ = h.Dock.Dock(0, cam)
	others := Footage{}
	for id, s := range want {
		if id != bad {
			others[id] = s
		}
	}
	if err := WaitCentral(ctx, store, others); err != nil {
		t.Fatal(err)
	}
	fid := health.FaultID(bad, "upload-stuck")
	if err := WaitFor(ctx, "upload-stuck raised", func() bool { return faultByID(h, fid).State != "" }); err != nil {
		t.Fatal(err)
	}
	if f := faultByID(h, fid); !strings.Contains(f.Detail, "refused by the test") || !strings.Contains(f.Detail, f0.Name) {
		t.Errorf("upload-stuck detail names neither the error nor the file: %q", f.Detail)
	}
	if faults := h.Agent.Faults(); len(faults) != 1 {
		t.Errorf("faults %+v, want only upload-stuck (the camera stays in service)", faults)
	}
	store.fixed.Store(true)
	if err := WaitCentral(ctx, store, want); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "upload-stuck cleared", func() bool { return faultByID(h, fid).State == health.Cleared }); err != nil {
		t.Fatal(err)
	}
}

func faultByID(h *Harness, id string) health.Fault {
	for _, f := range h.Agent.Faults() {
		if f.ID == id {
			return f
		}
	}
	return health.Fault{}
}
