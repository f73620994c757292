package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"

	"dock/hw/camlink"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newDock(t *testing.T, n int) *Dock {
	t.Helper()
	d, err := New(t.TempDir(), n, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func link(t *testing.T, d *Dock, slot int) *camlink.Link {
	t.Helper()
	port, err := camlink.OpenSerial(d.Board().Slots[slot].Serial, 115200)
	if err != nil {
		t.Fatal(err)
	}
	l := camlink.NewLink(port, 300*time.Millisecond, 1, quiet())
	t.Cleanup(func() { l.Close() })
	return l
}

// The whole camera protocol over a real pseudo-terminal opened with tarm/serial.
func TestCameraOverPseudoTerminal(t *testing.T) {
	d := newDock(t, 2)
	cam, err := NewCamera(t.TempDir(), DefaultCamera("CAM-7", "OF-1", "TEAM-A"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Generate(3, 100_000, 1, time.Now(), map[int]string{1: "dispute"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Dock(1, cam); err != nil {
		t.Fatal(err)
	}
	if gpioreg.ByName(d.Board().Slots[1].Presence).Read() != gpio.High {
		t.Fatal("presence not high after docking")
	}
	l := link(t, d, 1)
	ctx := context.Background()

	id, err := l.Identify(ctx)
	if err != nil || id.Serial != "CAM-7" || id.Officer != "OF-1" {
		t.Fatalf("identify = %+v, %v", id, err)
	}
	if _, err := l.Battery(ctx); err != nil {
		t.Fatal(err)
	}
	listing, err := l.List(ctx, camlink.ListLimits{})
	files := listing.Files
	if err != nil || len(files) != 3 || files[1].Mark != "dispute" || len(listing.Refused) != 0 {
		t.Fatalf("list = %+v, %v", listing, err)
	}
	mount := d.Board().Slots[1].Mount
	if _, err := os.Stat(filepath.Join(mount, files[0].Name)); err == nil {
		t.Fatal("storage readable before authentication")
	}
	if err := l.Delete(ctx, files[0].Name, files[0].Size); err == nil {
		t.Fatal("delete allowed before authentication")
	}
	var re *camlink.RemoteError
	if err := l.Auth(ctx, "wrong"); !errors.As(err, &re) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := l.Auth(ctx, "000000"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mount, files[0].Name)); err != nil {
		t.Fatalf("storage not exposed: %v", err)
	}
	if err := l.Delete(ctx, files[0].Name, files[0].Size+1); err == nil {
		t.Fatal("delete with the wrong size succeeded")
	}
	if err := l.Delete(ctx, files[0].Name, files[0].Size); err != nil {
		t.Fatal(err)
	}
	if left, _ := l.List(ctx, camlink.ListLimits{}); len(left.Files) != 2 {
		t.Fatalf("%d recordings left, want 2", len(left.Files))
	}
	if err := l.Lock(ctx, "battery"); err != nil {
		t.Fatal(err)
	}
	if id, _ := l.Identify(ctx); !id.Locked {
		t.Fatal("camera not locked")
	}
	if _, err := d.Undock(1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mount); !os.IsNotExist(err) {
		t.Fatal("storage still mounted after undocking")
	}
	if _, err := l.Identify(ctx); !errors.Is(err, camlink.ErrNoReply) {
		t.Fatalf("empty slot answered: %v", err)
	}
}

func TestHostileCameras(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*CameraState)
	}{
		{"silent", func(s *CameraState) { s.Silent = true }},
		{"garbage", func(s *CameraState) { s.Garbage = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDock(t, 1)
			st := DefaultCamera("CAM-H", "OF", "U")
			tc.mod(&st)
			cam, err := NewCamera(t.TempDir(), st)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Dock(0, cam); err != nil {
				t.Fatal(err)
			}
			l := link(t, d, 0)
			_, err = l.Identify(context.Background())
			if !errors.Is(err, camlink.ErrNoReply) {
				t.Fatalf("identify from a %s camera: %v", tc.name, err)
			}
			if _, n := l.Garbage(); tc.name == "garbage" && n == 0 {
				t.Error("garbage bytes were not kept for diagnosis")
			}
		})
	}
}

func TestChargingRaisesCharge(t *testing.T) {
	d := newDock(t, 1)
	cam, _ := NewCamera(t.TempDir(), DefaultCamera("CAM-C", "OF", "U"))
	_ = d.Dock(0, cam)
	before := cam.State().ChargePct
	d.Slots[0].Charge.Drive(gpio.High)
	deadline := time.Now().Add(3 * time.Second)
	for cam.State().ChargePct <= before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if cam.State().ChargePct <= before {
		t.Fatal("charge did not rise while the charger was on")
	}
}

// A camera's storage delivers no faster than its ReadRate through the board's opener, as
// USB mass storage limits a real camera; the bytes are the camera's.
func TestReadRateCapsStorage(t *testing.T) {
	d := newDock(t, 1)
	st := DefaultCamera("CAM-8", "OF-1", "TEAM-A")
	st.ReadRate = 8 << 20
	cam, err := NewCamera(t.TempDir(), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Generate(1, 2<<20, 1, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	l := link(t, d, 0)
	ctx := context.Background()
	listing, err := l.List(ctx, camlink.ListLimits{})
	files := listing.Files
	if err != nil || len(files) != 1 {
		t.Fatalf("list = %+v, %v", files, err)
	}
	if _, err := l.Identify(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Auth(ctx, "000000"); err != nil {
		t.Fatal(err)
	}
	f, err := d.Board().Open(filepath.Join(d.Board().Slots[0].Mount, files[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	got, err := io.ReadAll(f)
	took := time.Since(start)
	want, _ := os.ReadFile(filepath.Join(cam.Footage(), files[0].Name))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%v), want the camera's %d", len(got), err, len(want))
	}
	// 2 MiB at 8 MiB/s cannot take less than a quarter second.
	if took < 240*time.Millisecond {
		t.Fatalf("2 MiB read in %s: faster than the camera's 8 MiB/s", took)
	}
}

// A camera's storage is read strictly beneath the bay's mount: a symbolic link on the
// camera, wherever it points, is not followed, not even to the camera's own footage.
func TestStorageFollowsNoLinks(t *testing.T) {
	d := newDock(t, 1)
	cam, err := NewCamera(t.TempDir(), DefaultCamera("CAM-L", "OF", "U"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Put("VID_0001.MP4", []byte("footage"), FileMeta{}); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "dock-secret")
	if err := os.WriteFile(secret, []byte("the dock's own file"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"OUT.MP4": secret, "IN.MP4": "VID_0001.MP4"} {
		if err := os.Symlink(target, filepath.Join(cam.Footage(), name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	if err := unlock(link(t, d, 0), "000000"); err != nil {
		t.Fatal(err)
	}
	mount := d.Board().Slots[0].Mount
	for _, name := range []string{"OUT.MP4", "IN.MP4"} {
		f, err := d.Board().Open(filepath.Join(mount, name))
		if err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("%s opened through a link, read %q", name, b)
		}
	}
	f, err := d.Board().Open(filepath.Join(mount, "VID_0001.MP4"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
