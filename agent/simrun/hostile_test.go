package simrun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dock/board/sim"
	"dock/health"
	"dock/queue"
)

// Cameras that misbehave: each case docks one hostile camera next to nothing else and
// checks what the dock did about it. Evidence is never lost: whatever could not be copied
// stays on the camera.
func TestHostileCameras(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*sim.CameraState)
		fault health.Code // "" when the camera must be handled without a fault
		check func(t *testing.T, h *Harness, cam *sim.Camera, want Footage)
	}{
		{
			name:  "garbage bytes",
			mod:   func(s *sim.CameraState) { s.Garbage = true },
			fault: health.LinkLost,
			check: func(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
				f := faultOf(h, "link-lost")
				if !strings.Contains(f.Detail, "garbage") || !strings.Contains(f.Detail, "noise") {
					t.Errorf("link-lost detail keeps no garbage for diagnosis: %q", f.Detail)
				}
				if len(cam.State().Files) != len(want) {
					t.Error("recordings left a camera that never identified")
				}
			},
		},
		{
			name:  "silent",
			mod:   func(s *sim.CameraState) { s.Silent = true },
			fault: health.LinkLost,
		},
		{
			name: "slow replies inside the timeout",
			mod:  func(s *sim.CameraState) { s.ReplyDelay = 120 * time.Millisecond },
			check: func(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
				waitEmpty(t, cam)
			},
		},
		{
			name:  "sizes that lie",
			mod:   func(s *sim.CameraState) { s.LieSize = 1000 },
			fault: health.ReadErrors,
			check: func(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
				if len(cam.State().Files) != len(want) {
					t.Errorf("%d of %d recordings left on the camera", len(cam.State().Files), len(want))
				}
				for id := range want {
					if _, err := h.Store.Get(id); err == nil {
						t.Errorf("%s queued although its size was wrong", id)
					}
				}
				if !ledgerHas(h, queue.EvInput, "shorter than announced") {
					t.Error("no ledger entry for the bad input")
				}
			},
		},
		{
			name: "storage read errors",
			mod: func(s *sim.CameraState) {
				for name := range s.Files {
					s.Unreadable = []string{name}
					break
				}
			},
			fault: health.ReadErrors,
			check: func(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
				if err := WaitFor(context.Background(), "readable ones offloaded", func() bool { return len(cam.State().Files) == 1 }); err != nil {
					t.Errorf("%d recordings on the camera, want only the unreadable one", len(cam.State().Files))
				}
			},
		},
		{
			name:  "storage stalls mid-transfer",
			mod:   func(s *sim.CameraState) { s.StallAfter = 50_000 },
			fault: health.ReadErrors,
			check: func(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
				f := faultOf(h, "read-errors")
				if !strings.Contains(f.Detail, "stalled") {
					t.Errorf("read-errors detail does not say it stalled: %q", f.Detail)
				}
				if err := WaitFor(context.Background(), "the others offloaded", func() bool { return len(cam.State().Files) == 1 }); err != nil {
					t.Errorf("%d recordings on the camera, want only the stalled one", len(cam.State().Files))
				}
			},
		},
		{
			name: "full camera the dock cannot empty",
			mod: func(s *sim.CameraState) {
				s.Capacity = 600_000 // exactly its three recordings: no space left
				for name := range s.Files {
					s.Unreadable = append(s.Unreadable, name) // and none can be read
				}
			},
			fault: health.CameraFull,
		},
		{
			name:  "file changes during copy",
			mod:   func(s *sim.CameraState) { s.GrowsDuringCopy = true },
			fault: health.ReadErrors,
			check: func(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
				if err := WaitFor(context.Background(), "the others offloaded", func() bool { return len(cam.State().Files) == 1 }); err != nil {
					t.Errorf("%d recordings on the camera, want only the changing one", len(cam.State().Files))
				}
				// A copy taken while the file changed is never queued. A later pass may copy
				// it once it has settled (and be about to delete it from the camera): that
				// copy must be the camera's bytes as they are now.
				for name := range cam.State().Files {
					data, err := os.ReadFile(filepath.Join(cam.Footage(), filepath.FromSlash(name)))
					if err != nil {
						t.Fatal(err)
					}
					sum := sha256.Sum256(data)
					_ = h.Store.Each(func(r queue.Recording) error {
						if r.Device == "CAM-H" && r.Name == name && (r.Size != int64(len(data)) || r.SHA256 != hex.EncodeToString(sum[:])) {
							t.Errorf("%s is in the queue (%s, %d bytes, sha256 %s) as a version the camera no longer has (%d bytes): copied while it changed", name, r.ID, r.Size, r.SHA256, len(data))
						}
						return nil
					})
				}
			},
		},
		{
			name:  "storage refuses to unlock",
			mod:   func(s *sim.CameraState) { s.Password = "changed-by-someone" },
			fault: health.StorageUnreadable,
			check: func(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
				if len(cam.State().Files) != len(want) {
					t.Error("recordings left a camera whose storage never opened")
				}
			},
		},
		{
			name:  "clock years off",
			mod:   func(s *sim.CameraState) { s.ClockOffset = 3 * 365 * 24 * time.Hour },
			fault: health.ClockDrift,
			check: func(t *testing.T, h *Harness, cam *sim.Camera, want Footage) {
				waitEmpty(t, cam)
				for id := range want {
					r, err := h.Store.Get(id)
					if err != nil || r.ClockDrift < 365*24*time.Hour {
						t.Errorf("%s does not carry the camera's drift: %v %v", id, r.ClockDrift, err)
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, h := startHarness(t, 30*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
			cam, want, err := h.NewCamera("CAM-H", "OF-H", 3, 200_000, 5, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := cam.Update(tc.mod); err != nil {
				t.Fatal(err)
			}
			if err := h.Dock.Dock(0, cam); err != nil {
				t.Fatal(err)
			}
			if tc.fault != "" {
				if err := WaitFor(ctx, string(tc.fault)+" fault", func() bool { return faultOf(h, string(tc.fault)).Code != "" }); err != nil {
					t.Fatalf("%v; faults: %+v", err, h.Agent.Faults())
				}
				if err := WaitFor(ctx, "fault LED", func() bool { return h.Dock.Slots[0].Fault.Level() == true }); err != nil {
					t.Fatal(err)
				}
			}
			if tc.check != nil {
				tc.check(t, h, cam, want)
			}
			if tc.fault == "" {
				for _, f := range h.Agent.Faults() {
					t.Errorf("unexpected fault %s: %s", f.ID, f.Detail)
				}
			}
		})
	}
}

func faultOf(h *Harness, code string) health.Fault {
	for _, f := range h.Agent.Faults() {
		if string(f.Code) == code {
			return f
		}
	}
	return health.Fault{}
}

func waitEmpty(t *testing.T, cam *sim.Camera) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := WaitFor(ctx, "camera empty", func() bool { return len(cam.State().Files) == 0 }); err != nil {
		t.Fatal(err)
	}
}

func ledgerHas(h *Harness, kind, detail string) bool {
	found := false
	_ = h.Store.Ledger(1, func(e queue.Entry) error {
		if e.Kind == kind && strings.Contains(e.Detail, detail) {
			found = true
		}
		return nil
	})
	return found
}
