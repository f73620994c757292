package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"dock/health"
	"dock/queue"
	"dock/uplink/wire"
)

// faultRegistry holds the dock's faults by id, each persisted as document fault/<id>
// with its ledger entry. Readers load the map in force without a lock: a change copies
// the map, persists the fault (a synced commit) and only then publishes the copy. Changes
// are ordered by mu, which no reader takes, so no reader waits on a commit.
type faultRegistry struct {
	putDoc func(kind, id string, v any, events ...queue.Event) error // the store's PutDoc
	log    *slog.Logger
	now    func() time.Time

	mu   sync.Mutex // orders changes
	byID atomic.Pointer[map[string]health.Fault]
}

// newFaultRegistry returns a registry of the faults in store.
func newFaultRegistry(store *queue.Store, log *slog.Logger, now func() time.Time) (*faultRegistry, error) {
	r := &faultRegistry{putDoc: store.PutDoc, log: log, now: now}
	byID := map[string]health.Fault{}
	if err := store.Docs("fault", func(id string, raw []byte) error {
		var f health.Fault
		if err := jsonUnmarshal(raw, &f); err != nil {
			return fmt.Errorf("fault %s: %w", id, err)
		}
		byID[f.ID] = f
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load faults: %w", err)
	}
	r.byID.Store(&byID)
	return r, nil
}

// get returns fault id, if there is one.
func (r *faultRegistry) get(id string) (health.Fault, bool) {
	f, ok := (*r.byID.Load())[id]
	return f, ok
}

// put persists f with events and publishes it; the caller holds r.mu.
func (r *faultRegistry) put(f health.Fault, events ...queue.Event) error {
	if err := r.putDoc("fault", f.ID, f, events...); err != nil {
		return err
	}
	r.publish(f)
	return nil
}

// publish makes f the fault in force under its id; the caller holds r.mu.
func (r *faultRegistry) publish(f health.Fault) {
	next := maps.Clone(*r.byID.Load())
	next[f.ID] = f
	r.byID.Store(&next)
}

// raise records a fault for device (if it is not already open) and reports whether it is
// new. A fault that could not be persisted is still held (and logged).
func (r *faultRegistry) raise(slot int, device string, v health.Verdict) bool {
	id := health.FaultID(device, v.Code)
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.get(id); ok && f.State != health.Cleared {
		return false
	}
	f := health.Fault{ID: id, Device: device, Slot: slot, Code: v.Code, Detail: v.Detail, State: health.Raised, RaisedAt: r.now()}
	if err := r.putDoc("fault", id, f, queue.Event{Kind: queue.EvFault, Slot: slot, Device: device, Detail: string(v.Code) + ": " + v.Detail}); err != nil {
		r.log.Error("fault not persisted", "fault", id, "err", err)
	}
	r.publish(f)
	r.log.Warn("fault raised", "slot", slot, "device", device, "code", v.Code, "detail", v.Detail)
	return true
}

// event moves fault id through the fault lifecycle on ev, which by ordered.
func (r *faultRegistry) event(id string, ev health.FaultEvent, by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.get(id)
	if !ok {
		return fmt.Errorf("no fault %q", id)
	}
	next, err := health.NextFault(f.State, ev)
	if err != nil {
		return err
	}
	f.State = next
	return r.put(f, queue.Event{Kind: queue.EvFault, Device: f.Device, Detail: fmt.Sprintf("%s: %s by %q", id, ev, by)})
}

// alertSent records that fault id's alert went out now.
func (r *faultRegistry) alertSent(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, _ := r.get(id)
	next, err := health.NextFault(f.State, health.EvAlertSent)
	if err != nil {
		return
	}
	f.State, f.AlertedAt, f.Alerts = next, r.now(), f.Alerts+1
	_ = r.put(f)
}

// open returns the device's faults that keep it out of service.
func (r *faultRegistry) open(device string) map[health.Code]bool {
	out := map[health.Code]bool{}
	for _, f := range *r.byID.Load() {
		if f.Device == device && f.OutOfService() {
			out[f.Code] = true
		}
	}
	return out
}

// all returns every fault, sorted by id.
func (r *faultRegistry) all() []health.Fault {
	byID := *r.byID.Load()
	out := make([]health.Fault, 0, len(byID))
	for _, f := range byID {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// raise records a fault for device (if it is not already open) and reports whether it is new.
func (a *Agent) raise(slot int, device string, v health.Verdict) bool {
	return a.faults.raise(slot, device, v)
}

func (a *Agent) faultEvent(id string, ev health.FaultEvent, by string) error {
	return a.faults.event(id, ev, by)
}

// openFaults returns the device's faults that keep it out of service.
func (a *Agent) openFaults(device string) map[health.Code]bool { return a.faults.open(device) }

// Faults returns every fault, sorted by id.
func (a *Agent) Faults() []health.Fault { return a.faults.all() }

// spaceReturned clears the dock's spool-full condition once offload has room again. It is
// a condition of the dock, not a device fault: nothing goes for repair.
func (a *Agent) spaceReturned() {
	a.clearCondition(health.FaultID(a.cfg.Dock, "spool-full"), "dock: spool space returned")
}

// clearCondition clears fault id, if it is open, as a condition that no longer holds.
func (a *Agent) clearCondition(id, why string) {
	if f, ok := a.faults.get(id); ok && f.State != health.Cleared {
		if err := a.faultEvent(id, health.EvClear, why); err != nil {
			a.log.Error("fault not cleared", "fault", id, "err", err)
		}
	}
}

func (a *Agent) integrityFault(id string, r wire.ReceiptMsg) {
	a.metrics.integrityFault.Inc()
	rec, _ := a.store.Get(id)
	a.raise(-1, a.cfg.Dock, health.Verdict{Code: "integrity", Detail: fmt.Sprintf("central receipt for %s: sha256 %s size %d error %q; dock has %s size %d", id, r.SHA256, r.Size, r.Error, rec.SHA256, rec.Size)})
}

// codeUploadStuck is a recording whose transfers keep failing; the fault is the
// recording's (its Device is the recording id), so the camera stays in service.
const codeUploadStuck health.Code = "upload-stuck"

// uploadStuck raises upload-stuck for a recording the sender has failed to upload again
// and again; it goes on retrying it, apart from the others.
func (a *Agent) uploadStuck(id string, attempts int, lastErr error) {
	rec, _ := a.store.Get(id)
	a.raise(-1, id, health.Verdict{Code: codeUploadStuck, Detail: fmt.Sprintf("recording %s (camera %s, %q, %d bytes) failed %d uploads in a row, last: %v; retried apart from the others",
		id, rec.Device, rec.Name, rec.Size, attempts, lastErr)})
}

// uploadUnstuck clears a recording's upload-stuck fault once it is verified or gone.
func (a *Agent) uploadUnstuck(id string) {
	a.clearCondition(health.FaultID(id, codeUploadStuck), "dock: recording verified by central")
}

// alertLoop sends each open fault's alert until maintenance acknowledges it.
func (a *Agent) alertLoop(ctx context.Context) {
	t, ticks := a.timeSource().NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		every := a.Settings().AlertEvery
		for _, f := range a.Faults() {
			if !f.NeedsAlert(a.now(), every) {
				continue
			}
			msg := wire.AlertMsg{ID: f.ID, Device: f.Device, Slot: f.Slot, Code: string(f.Code), Detail: f.Detail, State: string(f.State), RaisedAt: f.RaisedAt, Attempt: f.Alerts + 1}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := a.up.Alert(pctx, msg)
			cancel()
			if err != nil {
				break // offline: the fault stays due and goes out after reconnect
			}
			a.faults.alertSent(f.ID)
		}
	}
}
