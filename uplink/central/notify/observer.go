package notify

import (
	"encoding/json"
	"errors"

	"dock/uplink/central"
	"dock/uplink/wire"
)

// Observer returns a central.Observer that passes everything to next (the fleet's, or
// none if nil) and gives every alert to n as well: central.Options.Observer takes it.
// An alert n could not record is reported with next's error, and taken again when the
// dock repeats it.
func (n *Notifier) Observer(next central.Observer) central.Observer {
	if next == nil {
		next = nopObserver{}
	}
	return observer{Observer: next, n: n}
}

type observer struct {
	central.Observer
	n *Notifier
}

func (o observer) DockAlert(dock string, a wire.AlertMsg) error {
	return errors.Join(o.Observer.DockAlert(dock, a), o.n.Observe(dock, a))
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) DockStatus(string, wire.StatusMsg) error       { return nil }
func (nopObserver) DockTelemetry(string, wire.TelemetryMsg) error { return nil }
func (nopObserver) DockAlert(string, wire.AlertMsg) error         { return nil }
func (nopObserver) DockReported(string, wire.ReportedMsg) error   { return nil }
func (nopObserver) DockHealth(string, wire.HealthMsg) error       { return nil }
func (nopObserver) DockLedger(string, []json.RawMessage, wire.LedgerAckMsg) error {
	return nil
}
func (nopObserver) RecordingFiled(string, central.Stored) error { return nil }
