package central

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"dock/uplink/wire"
)

// Attestation: may the uploading dock speak for the camera a recording names (issue #14,
// finding 3)? A transfer's RecordingMeta.Device is the dock's word. The dock's own ledger,
// chained and anchored at central (ledger.go), says which camera each recording was
// offloaded from. Central keeps, for each `offloaded` entry it chains, the camera it names
// (an Attestation), and when the same chain later says central's receipt was taken
// (`verified`), it compares that camera with the one the recording was filed under. A
// recording filed under a camera its dock's ledger never offloaded it from, or that the
// dock's agent disowns (`receipt-rejected`: a receipt for a recording it does not hold is
// what a forged upload with a stolen dock certificate earns), raises a central alert.
//
// Central flags, it does not refuse: the bytes stay filed as evidence (refusing would leave
// a dock whose ledger export lags or fails unable to hand over its footage, filling its
// spool); the alert is for the people who weigh the evidence. A dock whose whole agent is
// compromised can keep its ledger consistent with its lies: see uplink/THREATS.md.

// Attestation is what a dock's chained ledger says a recording was offloaded from.
type Attestation struct {
	Device string    `json:"device"`
	Seq    uint64    `json:"seq"`  // the offloaded entry
	Time   time.Time `json:"time"` // when central chained it
}

// Attestations is a Storage that keeps attestations (FileStore does). With a Storage that
// does not, central attests nothing.
type Attestations interface {
	// Attestation returns what dock's ledger said recording id was offloaded from.
	Attestation(dock, id string) (a Attestation, found bool, err error)
	// PutAttestation keeps a, durably and whole, replacing an earlier one.
	PutAttestation(dock, id string, a Attestation) error
}

// Central's own alert codes, kept with the docks' alerts (Receiver.Alerts).
const (
	AlertUnattested     = "recording-unattested"    // filed under a camera the dock's ledger does not name
	AlertReceiptRefused = "receipt-refused-by-dock" // the dock's agent refused central's receipt
	AlertLedgerBreak    = "ledger-break"            // the dock's ledger does not chain to central's copy
)

func (f FileStore) attestationPath(dock, id string) string {
	return filepath.Join(f.Dir, "attest", dock, id)
}

// Attestation implements Attestations.
func (f FileStore) Attestation(dock, id string) (Attestation, bool, error) {
	var a Attestation
	if err := errors.Join(safe(dock), safe(id)); err != nil {
		return a, false, err
	}
	b, err := os.ReadFile(f.attestationPath(dock, id))
	if errors.Is(err, os.ErrNotExist) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, false, fmt.Errorf("attestation %s/%s: %w", dock, id, err)
	}
	return a, true, nil
}

// PutAttestation implements Attestations: written and fsynced under a temporary name,
// renamed over the old one, the directory fsynced.
func (f FileStore) PutAttestation(dock, id string, a Attestation) error {
	if err := errors.Join(safe(dock), safe(id)); err != nil {
		return err
	}
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return f.replaceSynced(f.attestationPath(dock, id), b)
}

// replaceSynced gives path the content b, durably: written and fsynced under a temporary
// name, renamed over the old file, the directory fsynced (a crash leaves the old or the new).
func (f FileStore) replaceSynced(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := mkdirSynced(f.Dir, dir); err != nil {
		return err
	}
	tmp := tmpPath(path)
	if err := writeFileSynced(tmp, b, os.O_TRUNC, 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncPath(dir)
}

// ledgerEvent is what attestation reads of a chained entry (queue.Event's fields).
type ledgerEvent struct {
	Kind      string `json:"kind"`
	Device    string `json:"device"`
	Recording string `json:"recording"`
	Detail    string `json:"detail"`
}

// attest takes one entry of dock's ledger that central has just chained (seq, from a chain
// central holds from start on). An error is central failing to keep an attestation: the
// caller stops chaining there, so the dock exports the entry again.
func (r *Receiver) attest(dock string, raw json.RawMessage, seq, start uint64) error {
	store, ok := r.o.Store.(Attestations)
	if !ok {
		return nil
	}
	var ev ledgerEvent
	if err := json.Unmarshal(raw, &ev); err != nil || ev.Recording == "" {
		return nil
	}
	if err := safe(ev.Recording); err != nil {
		r.log.Warn("central: ledger entry names an unusable recording id", "dock", dock, "seq", seq, "err", err)
		return nil
	}
	switch ev.Kind {
	case "offloaded":
		if safe(ev.Device) != nil {
			r.log.Warn("central: offloaded entry names no usable camera", "dock", dock, "seq", seq, "recording", ev.Recording)
			return nil
		}
		if err := store.PutAttestation(dock, ev.Recording, Attestation{Device: ev.Device, Seq: seq, Time: time.Now().UTC()}); err != nil {
			return fmt.Errorf("attestation of %s/%s: %w", dock, ev.Recording, err)
		}
	case "verified":
		r.checkAttested(dock, ev.Recording, seq, start, store)
	case "receipt-rejected":
		r.raise(dock, AlertReceiptRefused, ev.Recording, ev.Device,
			fmt.Sprintf("dock's ledger entry %d: it refused central's receipt for recording %s: %s", seq, ev.Recording, clip(ev.Detail, r.o.MaxText)))
	}
	return nil
}

// checkAttested compares the camera recording id was filed under with the one dock's ledger
// offloaded it from, once the dock's ledger says it took central's receipt.
func (r *Receiver) checkAttested(dock, id string, seq, start uint64, store Attestations) {
	filed, ok, err := r.o.Store.Filed(dock, id)
	if err != nil || !ok {
		r.log.Warn("central: the dock's ledger says it took a receipt for a recording central has not filed for it",
			"dock", dock, "recording", id, "seq", seq, "err", err)
		return
	}
	a, found, err := store.Attestation(dock, id)
	switch {
	case err != nil:
		r.log.Error("central: reading an attestation", "dock", dock, "recording", id, "err", err)
	case found && a.Device == filed.Meta.Device:
		r.log.Debug("central: recording attested by the dock's ledger", "dock", dock, "recording", id, "device", a.Device, "offloaded_seq", a.Seq)
	case found:
		r.raise(dock, AlertUnattested, id, filed.Meta.Device,
			fmt.Sprintf("recording %s was filed as from camera %s, but the dock's ledger (entry %d) offloaded it from camera %s", id, filed.Meta.Device, a.Seq, a.Device))
	case start == 1:
		r.raise(dock, AlertUnattested, id, filed.Meta.Device,
			fmt.Sprintf("recording %s was filed as from camera %s, but the dock's ledger, held by central from its first entry, never offloaded it", id, filed.Meta.Device))
	default:
		r.log.Warn("central: recording cannot be attested: offloaded before central's copy of the dock's ledger begins",
			"dock", dock, "recording", id, "device", filed.Meta.Device, "chain_start", start)
	}
}

// raise keeps an alert of central's own about dock (its id: code/key), logged at Error and handed to the
// Observer as the dock's alerts are (the console's inbox, notifications).
func (r *Receiver) raise(dock, code, key, device, detail string) {
	a := wire.AlertMsg{ID: code + "/" + key, Device: device, Code: code, Detail: detail, State: "raised", RaisedAt: time.Now().UTC()}
	a, _ = r.noteAlert(dock, a)
	r.log.Error("central: "+code, "dock", dock, "key", key, "device", device, "detail", a.Detail)
	r.observe(dock, "alert", func(o Observer) error { return o.DockAlert(dock, a) })
}
