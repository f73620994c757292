package notify_test

import (
	"errors"
	"testing"
	"time"

	"dock/uplink/central"
	"dock/uplink/central/notify"
	"dock/uplink/wire"
)

// fleetStub stands in for the fleet's Observer: it records what it is told.
type fleetStub struct {
	central.Observer
	alerts, statuses int
	fail             error
}

func (f *fleetStub) DockAlert(string, wire.AlertMsg) error   { f.alerts++; return f.fail }
func (f *fleetStub) DockStatus(string, wire.StatusMsg) error { f.statuses++; return nil }

// The notifier's Observer tells the fleet everything and the notifier the alerts, even
// one the fleet failed on; without a fleet it observes the rest as nothing.
func TestObserverPassesEverythingOn(t *testing.T) {
	store := notify.NewMemStore()
	n, err := notify.New(notify.Options{Config: fastConfig(notify.Team{Name: "t", Docks: []string{"*"}, Webhook: &notify.Webhook{URL: "http://127.0.0.1:1/", Secret: []byte("s")}}), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	fleet := &fleetStub{fail: errors.New("database busy")}
	o := n.Observer(fleet)
	if err := o.DockAlert("dock-1", alert("CAM-1", "battery-worn", time.Now())); err == nil {
		t.Fatal("the fleet's error was lost")
	}
	if err := o.DockStatus("dock-1", wire.StatusMsg{State: "online"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := store.Pending(); fleet.alerts != 1 || fleet.statuses != 1 || len(p) != 1 {
		t.Fatalf("fleet heard %d alerts and %d statuses, the notifier %d faults; want 1, 1, 1", fleet.alerts, fleet.statuses, len(p))
	}
	alone := n.Observer(nil)
	if err := errors.Join(alone.DockStatus("dock-1", wire.StatusMsg{}), alone.DockAlert("dock-1", alert("CAM-2", "battery-worn", time.Now())),
		alone.RecordingFiled("dock-1", central.Stored{})); err != nil {
		t.Fatal(err)
	}
	if p, _ := store.Pending(); len(p) != 2 {
		t.Fatalf("without a fleet: %d faults pending, want 2", len(p))
	}
}
