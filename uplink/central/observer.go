package central

import (
	"encoding/json"
	"fmt"

	"dock/uplink/wire"
)

// Observer is told what the receiver took from docks (Options.Observer), so that the
// office's fleet state (package fleet) is kept without this package knowing of it. Calls
// come from the receiver's workers: one dock's in the order its messages arrived, after
// the receiver checked and clipped them (dock ids and devices are safe names, alert and
// report texts clipped to MaxText); what else a message holds is the dock's word and must
// be checked by the Observer. An Observer must not block for long: it holds up the dock.
//
// An error from RecordingFiled withholds the receipt, so the dock sends its end again and
// the recording is observed again: a filed recording is never acknowledged to the dock
// before its Observer took it. The other errors are logged and the message is dropped
// (alerts are sent again until acknowledged, status and reports are retained, telemetry
// and health come again).
type Observer interface {
	DockStatus(dock string, s wire.StatusMsg) error
	DockTelemetry(dock string, t wire.TelemetryMsg) error
	DockAlert(dock string, a wire.AlertMsg) error
	DockReported(dock string, r wire.ReportedMsg) error
	DockHealth(dock string, h wire.HealthMsg) error
	// DockLedger has a batch of exported entries, as the dock sent them, and central's
	// answer to it (ack.HeadSeq: the last entry that chained; ack.Error: a break).
	DockLedger(dock string, entries []json.RawMessage, ack wire.LedgerAckMsg) error
	// RecordingFiled is a recording central holds verified (again, for a repeat).
	RecordingFiled(dock string, s Stored) error
}

// observe hands a message to the Observer, if any, and logs its failure.
func (r *Receiver) observe(dock, what string, fn func(Observer) error) {
	if r.o.Observer == nil {
		return
	}
	if err := fn(r.o.Observer); err != nil {
		r.log.Error("central: fleet state not updated", "dock", dock, "message", what, "err", err)
	}
}

// observeFiled hands a filed recording to the Observer; an error withholds the receipt.
func (r *Receiver) observeFiled(dock string, s Stored) error {
	if r.o.Observer == nil {
		return nil
	}
	if err := r.o.Observer.RecordingFiled(dock, s); err != nil {
		r.log.Error("central: filed recording not in the fleet index: no receipt yet, the dock asks again", "dock", dock, "recording", s.Meta.ID, "err", err)
		return fmt.Errorf("observe filed %s: %w", s.Meta.ID, err)
	}
	return nil
}
