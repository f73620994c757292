package central

import (
	"encoding/json"
	"slices"
	"time"

	"dock/uplink/wire"
)

// dockState is what a receiver keeps in memory of one dock, bounded by Limits.
type dockState struct {
	status   *wire.StatusMsg
	reported *wire.ReportedMsg
	granted  time.Time                   // last grant sent
	regrant  bool                        // a grant is deferred to the end of the interval
	alerts   *lru[string, wire.AlertMsg] // by alert id
	ledger   []json.RawMessage           // the newest entries exported
	ledgerN  int                         // their bytes, as counted against MaxLedgerBytes
	streams  *lru[string, struct{}]      // recordings whose chunks this instance has seen
}

// ledgerEntryOverhead is what an entry costs in memory beyond its bytes.
const ledgerEntryOverhead = 32

// state returns dock's state, made if new, and marks the dock heard from; past MaxDocks
// the state of the dock heard from least recently is forgotten. r.mu is held.
func (r *Receiver) state(dock string) *dockState {
	if d, ok := r.docks.get(dock); ok {
		return d
	}
	d := &dockState{alerts: newLRU[string, wire.AlertMsg](r.o.MaxAlertsPerDock), streams: newLRU[string, struct{}](r.o.MaxUploadsPerDock)}
	if old, forgot := r.docks.put(dock, d); forgot {
		r.log.Warn("central: more docks than MaxDocks, forgetting the one heard from least recently", "dock", old, "max_docks", r.o.MaxDocks)
	}
	return d
}

func (r *Receiver) noteStatus(dock string, s wire.StatusMsg) wire.StatusMsg {
	s.Version, s.State = clip(s.Version, r.o.MaxText), clip(s.State, r.o.MaxText)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state(dock).status = &s
	return s
}

// noteAlert keeps an alert, its free text clipped, and reports whether it was known.
func (r *Receiver) noteAlert(dock string, a wire.AlertMsg) (wire.AlertMsg, bool) {
	n := r.o.MaxText
	a.ID, a.Device, a.Code, a.Detail, a.State = clip(a.ID, n), clip(a.Device, n), clip(a.Code, n), clip(a.Detail, n), clip(a.State, n)
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.state(dock)
	_, seen := d.alerts.peek(a.ID)
	d.alerts.put(a.ID, a)
	return a, seen
}

func (r *Receiver) noteReported(dock string, rep wire.ReportedMsg) wire.ReportedMsg {
	rep.Status, rep.Reason = clip(rep.Status, r.o.MaxText), clip(rep.Reason, r.o.MaxText)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state(dock).reported = &rep
	return rep
}

// noteHealth keeps a device's sample, the newest MaxHealthSamples of MaxDevices devices.
func (r *Receiver) noteHealth(h wire.HealthMsg) error {
	if err := safe(h.Device); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	hs, _ := r.health.get(h.Device)
	hs = append(hs, h)
	if over := len(hs) - r.o.MaxHealthSamples; over > 0 {
		hs = slices.Clone(hs[over:])
	}
	r.health.put(h.Device, hs)
	return nil
}

// noteLedger keeps a dock's exported entries: the newest, MaxLedgerBytes of them.
func (r *Receiver) noteLedger(dock string, entries []json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.state(dock)
	for _, e := range entries {
		d.ledger = append(d.ledger, e)
		d.ledgerN += len(e) + ledgerEntryOverhead
	}
	drop := 0
	for ; d.ledgerN > r.o.MaxLedgerBytes && drop < len(d.ledger); drop++ {
		d.ledgerN -= len(d.ledger[drop]) + ledgerEntryOverhead
	}
	if drop > 0 {
		d.ledger = slices.Clone(d.ledger[drop:])
	}
}

// firstChunk reports whether this is the first chunk of dock's recording id this instance
// has seen (recently: MaxUploadsPerDock recordings per dock are remembered).
func (r *Receiver) firstChunk(dock, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.state(dock)
	if _, seen := d.streams.get(id); seen {
		return false
	}
	d.streams.put(id, struct{}{})
	return true
}

// streamDone forgets dock's recording id once it is verified.
func (r *Receiver) streamDone(dock, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.docks.peek(dock); ok {
		d.streams.delete(id)
	}
}

// Alerts returns the latest alert of every fault seen, by dock/fault id.
func (r *Receiver) Alerts() map[string]wire.AlertMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]wire.AlertMsg{}
	r.docks.each(func(dock string, d *dockState) {
		d.alerts.each(func(id string, a wire.AlertMsg) { out[dock+"/"+id] = a })
	})
	return out
}

// Reported returns a dock's last config report.
func (r *Receiver) Reported(dock string) (wire.ReportedMsg, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.docks.peek(dock); ok && d.reported != nil {
		return *d.reported, true
	}
	return wire.ReportedMsg{}, false
}

// Ledger returns the ledger entries a dock exported, in arrival order: the newest
// MaxLedgerBytes of them.
func (r *Receiver) Ledger(dock string) []json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.docks.peek(dock); ok {
		return slices.Clone(d.ledger)
	}
	return nil
}

// Health returns a device's health samples from every dock, in arrival order: the newest
// MaxHealthSamples.
func (r *Receiver) Health(device string) []wire.HealthMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	hs, _ := r.health.peek(device)
	return slices.Clone(hs)
}
