package simrun

import (
	"path/filepath"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/wire"
)

// Central's pause and revocation stop a transfer mid-recording, not at its end: the dock
// stops sending, releases its lease and keeps its copy; a later grant resumes from
// central's offset and sends at most one window again.
func TestPauseAndRevokeStopMidRecording(t *testing.T) {
	const size, chunk, window = 24 << 20, 256 << 10, 4
	for _, stop := range []wire.GrantMsg{
		{ID: "g-pause", ChunkSize: chunk, Window: window, Paused: true},
		{ID: "g-revoke", Revoked: true},
	} {
		t.Run(stop.ID, func(t *testing.T) {
			dir := t.TempDir()
			ctx, h := startHarness(t, 90*time.Second, Options{Dir: dir, Slots: 1, NoCentral: true, Log: testLog(t)})
			cam, want, err := h.NewCamera("CAM-R", "OF-R", 1, size, 7, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = h.Dock.Dock(0, cam)
			if err := WaitFor(ctx, "spooled", func() bool { st, _ := h.Store.Stats(); return st.Count[queue.Spooled] == 1 }); err != nil {
				t.Fatal(err)
			}
			rcv, err := central.Start(ctx, central.Options{Broker: h.BrokerURL, ClientID: "office", ManualGrants: true,
				Store: central.FileStore{Dir: filepath.Join(dir, "central")}, SigningKey: h.CentralKey}, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer rcv.Close()
			var id string
			for id = range want {
			}
			slow := wire.GrantMsg{ID: "g-slow", ChunkSize: chunk, Window: window, RateBytes: 4 << 20}
			if err := rcv.Grant(ctx, "dock-sim-1", slow); err != nil {
				t.Fatal(err)
			}
			if err := WaitFor(ctx, "a quarter at central", func() bool { return rcv.Progress("dock-sim-1", id) >= size/4 }); err != nil {
				t.Fatal(err)
			}
			if err := rcv.Grant(ctx, "dock-sim-1", stop); err != nil {
				t.Fatal(err)
			}
			if err := WaitFor(ctx, "lease released", func() bool { r, _ := h.Store.Get(id); return r.State == queue.Spooled }); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // chunks already in flight land
			before := rcv.BytesReceived()
			time.Sleep(2 * time.Second) // 8 MiB at the granted rate
			if after := rcv.BytesReceived(); after != before {
				t.Fatalf("dock sent %d bytes after central's %s", after-before, stop.ID)
			}
			if held := rcv.Progress("dock-sim-1", id); held >= size {
				t.Fatalf("central holds %d of %d bytes: the stop came too late to test anything", held, size)
			}
			if r, _ := h.Store.Get(id); r.State != queue.Spooled {
				t.Fatalf("recording %s after the stop, want spooled", r.State)
			}
			if err := rcv.Grant(ctx, "dock-sim-1", wire.GrantMsg{ID: "g-go", ChunkSize: chunk, Window: window}); err != nil {
				t.Fatal(err)
			}
			if err := WaitCentral(ctx, rcv.Store(), want); err != nil {
				t.Fatal(err)
			}
			if again := rcv.BytesReceived() - size; again > window*chunk {
				t.Errorf("resumed transfer sent %d bytes again, more than one window (%d)", again, window*chunk)
			}
		})
	}
}
