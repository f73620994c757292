package simrun

import (
	"testing"
	"time"
)

// A camera's presence contact closes before its USB has enumerated: on a real board (and
// on the emulated one, build/vm) the bay's serial port appears a few seconds after the
// agent sees the camera. The agent waits for the port: the camera is offloaded, and no
// serial-port fault goes to maintenance for a port that was only late.
func TestSerialPortThatAppearsAfterThePresenceContact(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	h.Dock.Enumeration = 2 * time.Second
	cam, want, err := h.NewCamera("CAM-LATE-PORT", "OF-1", 2, 200_000, 5, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		t.Fatalf("%v; faults: %+v", err, h.Agent.Faults())
	}
	waitCameraEmpty(ctx, t, cam)
	for _, f := range h.Agent.Faults() {
		t.Errorf("fault raised for a port that was only late: %s %s: %s", f.Device, f.Code, f.Detail)
	}
}

// A camera's storage appears at the bay's mount a few seconds after the dock unlocks it
// (its disk enumerates, udev mounts it): the agent waits for it, and does not take the
// camera out of service with read errors for recordings it tried to read too early.
func TestStorageThatAppearsAfterTheUnlock(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	h.Dock.StorageDelay = 2 * time.Second
	cam, want, err := h.NewCamera("CAM-LATE-DISK", "OF-1", 2, 200_000, 6, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		t.Fatalf("%v; faults: %+v", err, h.Agent.Faults())
	}
	waitCameraEmpty(ctx, t, cam)
	for _, f := range h.Agent.Faults() {
		t.Errorf("fault raised for storage that was only late: %s %s: %s", f.Device, f.Code, f.Detail)
	}
}
