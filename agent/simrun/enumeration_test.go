package simrun

import (
	"strings"
	"testing"
	"time"

	"dock/board/sim"
	"dock/health"
)

// A camera's presence contact closes before its USB has enumerated: on a real board (and
// on the emulated one, build/vm) the bay's serial port appears a few seconds after the
// agent sees the camera. The agent waits for the port: the camera is offloaded, and no
// serial-port fault goes to maintenance for a port that was only late.
func TestSerialPortThatAppearsAfterThePresenceContact(t *testing.T) {
	offloadedWithoutFault(t, "CAM-LATE-PORT", 5, func(d *sim.Dock) { d.Enumeration = 2 * time.Second })
}

// A camera's storage appears at the bay's mount a few seconds after the dock unlocks it
// (its disk enumerates, udev mounts it): the agent waits for it, and does not take the
// camera out of service with read errors for recordings it tried to read too early.
func TestStorageThatAppearsAfterTheUnlock(t *testing.T) {
	offloadedWithoutFault(t, "CAM-LATE-DISK", 6, func(d *sim.Dock) { d.StorageDelay = 2 * time.Second })
}

// offloadedWithoutFault docks a two-recording camera on a dock made slow by late (its port
// or storage appearing after a delay) and
// requires every recording at central, the camera emptied and no fault raised.
func offloadedWithoutFault(t *testing.T, serial string, seed uint64, late func(*sim.Dock)) {
	t.Helper()
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	late(h.Dock)
	cam, want, err := h.NewCamera(serial, "OF-1", 2, 200_000, seed, nil, nil)
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
		t.Errorf("fault raised for a camera that was only late: %s %s: %s", f.Device, f.Code, f.Detail)
	}
}

// A bay whose serial port does not appear in time is a fault of that bay, sent to
// maintenance; when the port then appears the camera is offloaded and the fault is cleared
// as a condition that no longer holds.
func TestSerialPortLateBeyondTheWaitIsABayFaultThatClears(t *testing.T) {
	ctx, h := startHarness(t, 90*time.Second, Options{Dir: t.TempDir(), Slots: 2, Log: testLog(t)})
	h.Dock.Enumeration = 17 * time.Second // the agent waits 15 s
	cam, want, err := h.NewCamera("CAM-VERY-LATE", "OF-1", 1, 100_000, 7, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(1, cam); err != nil {
		t.Fatal(err)
	}
	var raised health.Fault
	if err := WaitFor(ctx, "the serial-port fault", func() bool {
		for _, f := range h.Agent.Faults() {
			if f.Code == "serial-port" {
				raised = f
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	if raised.Slot != 1 || !strings.HasSuffix(raised.Device, "-slot1") {
		t.Errorf("serial-port fault of %q slot %d, want bay 1's own (device <dock>-slot1)", raised.Device, raised.Slot)
	}
	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		t.Fatalf("%v; faults: %+v", err, h.Agent.Faults())
	}
	if err := WaitFor(ctx, "the serial-port fault cleared", func() bool {
		for _, f := range h.Agent.Faults() {
			if f.Code == "serial-port" {
				return f.State == health.Cleared
			}
		}
		return false
	}); err != nil {
		t.Errorf("%v: %+v", err, h.Agent.Faults())
	}
}
