package simrun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dock/board/sim"
	"dock/hw/camlink"
	"dock/queue"
	"dock/uplink/mqtttest"
)

// A camera that keeps its footage in folders as real cards do (DCIM/100MEDIA, RECORD,
// PHOTO), with a link to a file of the dock's and two entries whose names the dock refuses:
// every good recording reaches central byte for byte and leaves the camera; the link and
// the bad entries stay on it, are named in an advisory storage-entry-refused fault and
// the ledger, and the camera stays in service. Nothing of the link's target leaves the dock.
// Over a real mosquitto.
func TestCameraWithFoldersAndBadEntries(t *testing.T) {
	mq := mqtttest.Start(t, "")
	ctx, h := startHarness(t, 90*time.Second, Options{Dir: t.TempDir(), Slots: 1, Broker: mq.URL, Log: testLog(t)})
	cam, want, err := h.NewCamera("CAM-D", "OF-D", 6, 120_000, 41, nil, func(s *sim.CameraState) { s.Layout = sim.LayoutDCF })
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"DCIM/100MEDIA/", "RECORD/", "PHOTO/"} {
		found := false
		for name := range cam.State().Files {
			found = found || strings.HasPrefix(name, dir)
		}
		if !found {
			t.Fatalf("the simulated card has nothing under %s: %v", dir, cam.State().Files)
		}
	}
	secret := filepath.Join(h.Dir, "keys", "not-footage.key")
	if err := os.MkdirAll(filepath.Dir(secret), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("the dock's own secret, not footage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cam.AddSymlink("DCIM/100MEDIA/LINK_0001.MP4", secret); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour).UTC()
	bad := []camlink.FileEntry{
		{Name: "DCIM/../../../etc/passwd", Size: 10, Start: start},
		{Name: "DCIM/100MEDIA/bad\x01name.MP4", Size: 5, Start: start},
	}
	if err := cam.Update(func(s *sim.CameraState) { s.ExtraListing = bad }); err != nil {
		t.Fatal(err)
	}

	_ = h.Dock.Dock(0, cam)
	waitCameraEmpty(ctx, t, cam)
	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		t.Fatal(err)
	}
	f := faultOf(h, "storage-entry-refused")
	if f.ID == "" {
		t.Fatalf("no storage-entry-refused fault; faults: %+v", h.Agent.Faults())
	}
	for _, name := range []string{"LINK_0001.MP4", `DCIM/../../../etc/passwd`, `bad\x01name`} {
		if !strings.Contains(f.Detail, name) && !ledgerHas(h, queue.EvInput, name) {
			t.Errorf("%s named neither in the fault (%q) nor in the ledger", name, f.Detail)
		}
	}
	if err := WaitFor(ctx, "the bay charging, in service", func() bool { return h.Agent.Telemetry().Slots[0].State == "charging" }); err != nil {
		t.Errorf("%v: slot %+v, faults %+v", err, h.Agent.Telemetry().Slots[0], h.Agent.Faults())
	}
	if _, ok := cam.State().Symlinks["DCIM/100MEDIA/LINK_0001.MP4"]; !ok {
		t.Error("the link left the camera")
	}
	list, err := h.Central.Store().List()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if b, _ := os.ReadFile(s.Path); strings.Contains(string(b), "the dock's own secret") {
			t.Errorf("the link's target reached central as %s", s.Meta.Name)
		}
	}
	_ = h.Store.Each(func(r queue.Recording) error {
		if strings.Contains(r.Name, "LINK_") || strings.Contains(r.Name, "passwd") {
			t.Errorf("%q entered the queue as %s", r.Name, r.ID)
		}
		return nil
	})
}
