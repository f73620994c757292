package fleet_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"dock/agent/simrun"
	"dock/board/sim"
	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/central/fleet"
	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// The real receiver over mosquitto feeds the fleet state from the real agent on a
// simulated dock: presence, bays, cameras, health, a fault, the filed recordings and the
// verified ledger; a step on the fault goes to the dock as its signed command and the
// dock's ledger confirms it.
func TestReceiverFeedsFleetFromASimulatedDock(t *testing.T) {
	mq := mqtttest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	_, key, _ := ed25519.GenerateKey(nil)
	db, err := fleet.Open(filepath.Join(dir, "central"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := central.FileStore{Dir: filepath.Join(dir, "central")}
	r, err := central.Start(ctx, central.Options{Broker: mq.URL, ClientID: "central-test", Store: store, SigningKey: key, Observer: db}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h, err := simrun.Start(ctx, simrun.Options{Dir: filepath.Join(dir, "sim"), Slots: 2, Dock: "dock-f1", Broker: mq.URL, NoCentral: true, CentralKey: key, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := r.PushConfig(ctx, "dock-f1", wire.ConfigMsg{Version: 1, Team: "T1", TelemetryEvery: wire.Duration(time.Second), AlertEvery: wire.Duration(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	good, want, err := h.NewCamera("CAM-G", "OF-G", 2, 200_000, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	worn, want2, err := h.NewCamera("CAM-W", "OF-W", 1, 100_000, 2, nil, func(s *sim.CameraState) { s.FullMAh = 1500 })
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want2 {
		want[k] = v
	}
	if err := h.Dock.Dock(0, good); err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(1, worn); err != nil {
		t.Fatal(err)
	}
	if err := simrun.WaitCentral(ctx, store, want); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		if err := simrun.WaitFor(ctx, what, cond); err != nil {
			t.Fatal(err)
		}
	}
	wait("every filed recording in the fleet index", func() bool {
		rs, err := db.Recordings(fleet.Search{Dock: "dock-f1"})
		return err == nil && len(rs) == len(want)
	})
	wait("the dock online with two cameras in its bays, config 1", func() bool {
		ds, _ := db.Docks()
		if len(ds) != 1 || ds[0].State != "online" || ds[0].ConfigVersion != 1 || len(ds[0].Bays) != 2 {
			return false
		}
		return ds[0].Bays[0].Device == "CAM-G" && ds[0].Bays[1].Device == "CAM-W"
	})
	wait("the worn battery's fault in the inbox", func() bool {
		fs, _ := db.Faults()
		return len(fs) == 1 && fs[0].ID == "CAM-W/battery-worn" && fs[0].State == fleet.FaultNew
	})
	wait("health samples of both cameras", func() bool {
		cs, _ := db.Cameras()
		return len(cs) == 2 && len(cs[0].History) > 0 && len(cs[1].History) > 0 && cs[1].HealthPct > 0 && cs[1].HealthPct < 70
	})
	kind, err := db.FaultStep("dock-f1", "CAM-W/battery-worn", fleet.FaultAcknowledged, "maint", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Command(ctx, "dock-f1", wire.CommandMsg{Kind: kind, Fault: "CAM-W/battery-worn", By: "maint"}); err != nil {
		t.Fatal(err)
	}
	wait("the dock's ledger confirming the acknowledgement", func() bool {
		fs, _ := db.Faults()
		return len(fs) == 1 && len(fs[0].Steps) == 1 && !fs[0].Steps[0].Confirmed.IsZero()
	})
	ls, err := db.Ledgers()
	if err != nil || len(ls) != 1 || ls[0].HeadSeq == 0 || ls[0].Breaks != 0 || ls[0].Entries == 0 {
		t.Fatalf("ledgers %+v %v", ls, err)
	}
	t.Logf("ledger head %d verified, %d entries held", ls[0].HeadSeq, ls[0].Entries)
}

// flakyFleet fails the first recordings it is told were filed.
type flakyFleet struct {
	*fleet.DB
	mu    sync.Mutex
	fails int
}

func (f *flakyFleet) RecordingFiled(dock string, s central.Stored) error {
	f.mu.Lock()
	if f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		return errors.New("disk full")
	}
	f.mu.Unlock()
	return f.DB.RecordingFiled(dock, s)
}

// A recording the fleet could not index gets no receipt: the dock keeps its copy and asks
// again, and the recording is indexed when the fleet takes it.
func TestRecordingNotIndexedGetsNoReceipt(t *testing.T) {
	mq := mqtttest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	_, key, _ := ed25519.GenerateKey(nil)
	db, err := fleet.Open(filepath.Join(dir, "central"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	flaky := &flakyFleet{DB: db, fails: 2}
	store := central.FileStore{Dir: filepath.Join(dir, "central")}
	r, err := central.Start(ctx, central.Options{Broker: mq.URL, ClientID: "central-flaky", Store: store, SigningKey: key, Observer: flaky}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h, err := simrun.Start(ctx, simrun.Options{Dir: filepath.Join(dir, "sim"), Slots: 1, Dock: "dock-f2", Broker: mq.URL, NoCentral: true, CentralKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cam, want, err := h.NewCamera("CAM-F", "OF-F", 2, 100_000, 5, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	if err := simrun.WaitCentral(ctx, store, want); err != nil {
		t.Fatal(err)
	}
	if err := simrun.WaitFor(ctx, "both recordings indexed and freed on the dock after the fleet took them", func() bool {
		rs, _ := db.Recordings(fleet.Search{Dock: "dock-f2"})
		st, _ := h.Store.Stats()
		return len(rs) == 2 && st.Count[queue.Freed] == 2
	}); err != nil {
		st, _ := h.Store.Stats()
		t.Fatalf("%v (dock %+v)", err, st)
	}
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	if flaky.fails != 0 {
		t.Fatalf("%d failures left: the fleet was not asked again", flaky.fails)
	}
}
