package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"dock/board"
	"dock/health"
	"dock/hw"
	"dock/queue"
	"dock/uplink"
	"dock/uplink/wire"
)

// Agent is the dock daemon.
type Agent struct {
	cfg    Config
	board  board.Board
	store  *queue.Store
	up     *uplink.Uplink
	sender *uplink.Sender
	log    *slog.Logger
	now    func() time.Time
	// floor is the earliest plausible time for the clock (see clockFloor).
	floor     time.Time
	floorFrom string

	mu       sync.RWMutex
	settings Settings
	slots    []*slot
	faults   map[string]health.Fault // by fault id
	metrics  *metrics

	metricsAddr atomic.Value // string
	thermalOnce sync.Once

	// The settings before the last applied config, and when it was applied: if the dock
	// cannot reach the broker for RollbackAfter after a change, it returns to them.
	previous   *Settings
	appliedAt  time.Time
	rolledBack *Settings // reported to central once the broker is back

	// Ledger entries the store refused, waiting to be written (see note); record is
	// store.Record.
	record    func(...queue.Event) error
	notesMu   sync.Mutex
	unwritten []queue.Event
	notesLost int
}

// CheckBoard looks up every pin the board names and reports all that are missing, naming
// the board and slot.
func CheckBoard(b board.Board) error {
	if err := b.Check(); err != nil {
		return err
	}
	var errs []error
	for i, def := range b.Slots {
		if _, err := hw.LookupLines(def.Presence, def.Charge, def.Fault); err != nil {
			errs = append(errs, fmt.Errorf("board %s slot %d: %w", b.Name, i, err))
		}
	}
	return errors.Join(errs...)
}

// New wires an agent. The board's pins must already be registered with periph (host.Init
// on a real board, the simulator otherwise).
func New(cfg Config, b board.Board, store *queue.Store, up *uplink.Uplink, log *slog.Logger) (*Agent, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, board: b, store: store, up: up, log: log, now: func() time.Time { return time.Now().UTC() },
		settings: initialSettings(cfg), faults: map[string]health.Fault{}}
	a.record = store.Record
	a.floor, a.floorFrom = clockFloor(store)
	var saved Settings
	if ok, err := store.GetDoc("config", "central", &saved); err != nil {
		return nil, fmt.Errorf("load settings: %w", err)
	} else if ok {
		if saved.DockLimits == (health.DockLimits{}) {
			saved.DockLimits = health.DefaultDockLimits() // saved by a version without them
		}
		a.settings = saved
	}
	if err := store.Docs("fault", func(id string, raw []byte) error {
		var f health.Fault
		if err := jsonUnmarshal(raw, &f); err != nil {
			return fmt.Errorf("fault %s: %w", id, err)
		}
		a.faults[f.ID] = f
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load faults: %w", err)
	}
	for i, def := range b.Slots {
		lines, err := hw.LookupLines(def.Presence, def.Charge, def.Fault)
		if err != nil {
			return nil, fmt.Errorf("board %s slot %d: %w", b.Name, i, err)
		}
		s := &slot{a: a, index: i, def: def, lines: lines, log: log.With("slot", i), state: Empty}
		var persisted slotDoc
		if ok, err := store.GetDoc("slot", fmt.Sprint(i), &persisted); err != nil {
			return nil, err
		} else if ok {
			s.state, s.device = persisted.State, persisted.Device
		}
		a.slots = append(a.slots, s)
	}
	a.metrics = newMetrics(a)
	if up != nil {
		a.sender = uplink.NewSender(up, store, log)
		a.sender.OnIntegrity = a.integrityFault
		a.sender.OnVerified = func(r queue.Recording) {
			a.metrics.verified.Inc()
			a.metrics.verifiedBytes.Add(float64(r.Size))
			a.uploadUnstuck(r.ID) // also after a restart, when the sender forgot it was stuck
		}
		a.sender.OnStuck = a.uploadStuck
		a.sender.OnUnstuck = a.uploadUnstuck
	}
	return a, nil
}

// Settings returns the settings in force.
func (a *Agent) Settings() Settings {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.settings
}

// Run runs the dock until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if n, err := a.store.ReleaseAll("agent restarted"); err != nil {
		return fmt.Errorf("release stale leases: %w", err)
	} else if n > 0 {
		a.log.Info("released leases left by a previous run", "count", n)
	}
	if n, err := a.store.FreeOrphans(); err != nil {
		return fmt.Errorf("free orphans: %w", err)
	} else if n > 0 {
		a.log.Info("removed spool files of freed recordings", "count", n)
	}
	for _, s := range a.slots {
		if err := s.lines.Init(); err != nil {
			return fmt.Errorf("slot %d: %w", s.index, err)
		}
	}
	var wg sync.WaitGroup
	sock := a.cfg.ControlSocket
	if sock == "" {
		sock = filepath.Join(a.cfg.DataDir, "ctl.sock")
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.serveControl(ctx, sock); err != nil {
			a.log.Error("control socket", "err", err)
		}
	}()
	if a.cfg.MetricsAddr != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.serveMetrics(ctx, a.cfg.MetricsAddr); err != nil {
				a.log.Error("metrics endpoint", "addr", a.cfg.MetricsAddr, "err", err)
			}
		}()
	}
	wg.Add(3)
	go func() { defer wg.Done(); a.retryNotes(ctx, 5*time.Second) }()
	go func() { defer wg.Done(); a.watchdog(ctx) }()
	go func() { defer wg.Done(); a.selfHealth(ctx, min(a.cfg.Poll.D(), 15*time.Second)) }()
	for _, s := range a.slots {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx) }()
	}
	if a.up != nil {
		wg.Add(4)
		go func() { defer wg.Done(); a.sender.Run(ctx) }()
		go func() { defer wg.Done(); a.intake(ctx) }()
		go func() { defer wg.Done(); a.alertLoop(ctx) }()
		go func() { defer wg.Done(); a.reportLoop(ctx) }()
	}
	a.log.Info("dock agent running", "dock", a.cfg.Dock, "board", a.board.Name, "slots", len(a.slots), "version", Version)
	<-ctx.Done()
	wg.Wait()
	for _, s := range a.slots {
		_ = s.lines.SetCharging(false)
	}
	return nil
}

// kick tells the uplink that footage was spooled.
func (a *Agent) kick() {
	if a.sender != nil {
		a.sender.Kick()
	}
}

// intake applies config pushes and commands from central.
func (a *Agent) intake(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-a.up.Configs():
			a.applyConfig(ctx, m)
		case c := <-a.up.Commands():
			if err := a.command(c); err != nil {
				a.log.Warn("command refused", "kind", c.Kind, "err", err)
				a.note(queue.Event{Kind: queue.EvInput, Detail: fmt.Sprintf("command %s refused: %v", c.Kind, err)})
			}
		case r := <-a.up.Rejects():
			if r.Config != nil {
				a.configRefused(ctx, *r.Config, r.Err) // its seal: central hears why
				continue
			}
			a.note(queue.Event{Kind: queue.EvInput, Detail: fmt.Sprintf("message on %s rejected: %v", r.Topic, r.Err)})
		}
	}
}

func (a *Agent) applyConfig(ctx context.Context, m wire.ConfigMsg) {
	a.mu.Lock()
	cur := a.settings
	if m.Version == cur.Version || (m.Version == cur.RolledBack && a.rolledBack != nil) {
		a.mu.Unlock()
		return // the retained config we already run, or just undid (redelivered on reconnect)
	}
	next := cur
	err := a.checkSignature(m)
	if err == nil {
		next, err = cur.apply(m)
	}
	if err == nil {
		err = a.store.PutDoc("config", "central", next, queue.Event{Kind: queue.EvConfig, Detail: fmt.Sprintf("applied version %d (was %d)", next.Version, cur.Version)})
		if err == nil {
			a.settings = next
			prev := cur
			a.previous, a.appliedAt = &prev, a.now()
		}
	}
	a.mu.Unlock()
	rep := wire.ReportedMsg{Version: m.Version, Status: "applied", Active: next.Version, Time: a.now()}
	if err != nil {
		rep.Status, rep.Reason, rep.Active = "rejected", err.Error(), cur.Version
		a.log.Warn("config rejected", "version", m.Version, "reason", err)
		a.note(queue.Event{Kind: queue.EvConfig, Detail: fmt.Sprintf("rejected version %d: %v", m.Version, err)})
	} else {
		a.log.Info("config applied", "version", next.Version, "team", next.Team)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.up.ReportConfig(pctx, rep); err != nil {
		a.log.Warn("config report not sent", "err", err)
	}
}

// rollbackIfCutOff returns to the settings before the last config when the broker has
// been unreachable since shortly after it was applied, for longer than rollbackAfter: a
// config that cut the dock off must not strand it. It reports whether it rolled back.
func (a *Agent) rollbackIfCutOff(downSince time.Time, rollbackAfter time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.previous == nil || downSince.IsZero() || downSince.Before(a.appliedAt) || a.now().Sub(downSince) < rollbackAfter {
		return false
	}
	bad, prev := a.settings, *a.previous
	prev.RolledBack = bad.Version
	if err := a.store.PutDoc("config", "central", prev, queue.Event{Kind: queue.EvConfig,
		Detail: fmt.Sprintf("rolled back version %d to %d: broker unreachable for %s since it was applied", bad.Version, prev.Version, rollbackAfter)}); err != nil {
		a.log.Error("config rollback not persisted", "err", err)
		return false
	}
	a.settings, a.previous = prev, nil
	a.rolledBack = &bad
	a.log.Warn("config rolled back", "from", bad.Version, "to", prev.Version)
	return true
}

// checkSignature refuses a config that central did not sign for this dock, or that has
// expired: the broker connection being authenticated is not enough. The uplink checked
// the seal already; this is the agent's own word on what it applies.
func (a *Agent) checkSignature(m wire.ConfigMsg) error {
	key := a.cfg.centralKey()
	if key == nil {
		return fmt.Errorf("no central_key configured: configs cannot be verified, none is accepted")
	}
	if err := wire.Open(&m, key, a.cfg.Dock); err != nil {
		return err
	}
	if now := a.now(); m.Expires.IsZero() || !now.Before(m.Expires) {
		return fmt.Errorf("config expired at %s (now %s)", m.Expires.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return nil
}

// configRefused records and reports a config the uplink refused for its seal.
func (a *Agent) configRefused(ctx context.Context, m wire.ConfigMsg, err error) {
	a.mu.RLock()
	active := a.settings.Version
	a.mu.RUnlock()
	a.log.Warn("config rejected", "version", m.Version, "reason", err)
	a.note(queue.Event{Kind: queue.EvConfig, Detail: fmt.Sprintf("rejected version %d: %v", m.Version, err)})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rep := wire.ReportedMsg{Version: m.Version, Status: "rejected", Reason: err.Error(), Active: active, Time: a.now()}
	if err := a.up.ReportConfig(pctx, rep); err != nil {
		a.log.Warn("config report not sent", "err", err)
	}
}

// custodyCommands change custody of footage or of a device: they must name who ordered
// them (By), which the ledger records.
var custodyCommands = map[string]bool{"release-hold": true, "clear-fault": true, "repair-fault": true, "ack-fault": true}

// command applies one of central's commands, which the uplink let through sealed for this
// dock. Its Seq must be above the last command's taken, persisted (document "seen",
// "command") before the command runs, so a command captured off the broker and published
// again is refused across restarts too.
func (a *Agent) command(c wire.CommandMsg) error {
	var seen uint64
	if _, err := a.store.GetDoc("seen", "command", &seen); err != nil {
		return err
	}
	if c.Seq <= seen {
		return fmt.Errorf("replayed: seq %d not above the last command's %d", c.Seq, seen)
	}
	if custodyCommands[c.Kind] && c.By == "" {
		return fmt.Errorf("%s without who ordered it (by)", c.Kind)
	}
	// Each kind's own ledger entry names who ordered it (fault, hold, spot check).
	if err := a.store.PutDoc("seen", "command", c.Seq); err != nil {
		return err
	}
	switch c.Kind {
	case "ack-fault":
		return a.faultEvent(c.Fault, health.EvAck, c.By)
	case "repair-fault":
		return a.faultEvent(c.Fault, health.EvRepair, c.By)
	case "clear-fault":
		return a.faultEvent(c.Fault, health.EvClear, c.By)
	case "sample":
		return a.sample(c)
	case "release-hold":
		if _, err := a.store.ReleaseHold(c.Recording, c.By); err != nil {
			return err
		}
		r, err := a.store.Get(c.Recording)
		if err == nil && r.Freeable() {
			return a.store.Free(c.Recording)
		}
		return err
	}
	return fmt.Errorf("unknown command %q", c.Kind)
}

// sample honours central's spot check (article 22): Count recordings of Device started on
// Day, chosen at random among those still on the dock, upload before anything else.
func (a *Agent) sample(c wire.CommandMsg) error {
	day, err := time.Parse("2006-01-02", c.Day)
	if err != nil || c.Device == "" || c.Count < 1 || c.Count > 1000 {
		return fmt.Errorf("sample needs a device, a day (YYYY-MM-DD) and a count of 1-1000")
	}
	var pool []string
	err = a.store.SpooledBetween(day, day.Add(24*time.Hour), func(r queue.Recording) error {
		if r.Device == c.Device {
			pool = append(pool, r.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rand.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	pool = pool[:min(c.Count, len(pool))]
	if err := a.store.Record(queue.Event{Kind: queue.EvAccess, Device: c.Device, Detail: fmt.Sprintf("spot check by %q: %d of %s uploaded first: %v", c.By, len(pool), c.Day, pool)}); err != nil {
		return err
	}
	if a.sender != nil {
		a.sender.Prioritize(pool)
	}
	return nil
}

// raise records a fault for device (if it is not already open) and reports whether it is new.
func (a *Agent) raise(slot int, device string, v health.Verdict) bool {
	id := health.FaultID(device, v.Code)
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.faults[id]; ok && f.State != health.Cleared {
		return false
	}
	f := health.Fault{ID: id, Device: device, Slot: slot, Code: v.Code, Detail: v.Detail, State: health.Raised, RaisedAt: a.now()}
	if err := a.store.PutDoc("fault", id, f, queue.Event{Kind: queue.EvFault, Slot: slot, Device: device, Detail: string(v.Code) + ": " + v.Detail}); err != nil {
		a.log.Error("fault not persisted", "fault", id, "err", err)
	}
	a.faults[id] = f
	a.log.Warn("fault raised", "slot", slot, "device", device, "code", v.Code, "detail", v.Detail)
	return true
}

func (a *Agent) faultEvent(id string, ev health.FaultEvent, by string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.faults[id]
	if !ok {
		return fmt.Errorf("no fault %q", id)
	}
	next, err := health.NextFault(f.State, ev)
	if err != nil {
		return err
	}
	f.State = next
	if err := a.store.PutDoc("fault", id, f, queue.Event{Kind: queue.EvFault, Device: f.Device, Detail: fmt.Sprintf("%s: %s by %q", id, ev, by)}); err != nil {
		return err
	}
	a.faults[id] = f
	return nil
}

// openFaults returns the device's faults that keep it out of service.
func (a *Agent) openFaults(device string) map[health.Code]bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := map[health.Code]bool{}
	for _, f := range a.faults {
		if f.Device == device && f.OutOfService() {
			out[f.Code] = true
		}
	}
	return out
}

// Faults returns every fault, sorted by id.
func (a *Agent) Faults() []health.Fault {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]health.Fault, 0, len(a.faults))
	for _, f := range a.faults {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// spaceReturned clears the dock's spool-full condition once offload has room again. It is
// a condition of the dock, not a device fault: nothing goes for repair.
func (a *Agent) spaceReturned() {
	a.clearCondition(health.FaultID(a.cfg.Dock, "spool-full"), "dock: spool space returned")
}

// clearCondition clears fault id, if it is open, as a condition that no longer holds.
func (a *Agent) clearCondition(id, why string) {
	a.mu.RLock()
	f, ok := a.faults[id]
	a.mu.RUnlock()
	if ok && f.State != health.Cleared {
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
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
			a.mu.Lock()
			cur := a.faults[f.ID]
			if next, err := health.NextFault(cur.State, health.EvAlertSent); err == nil {
				cur.State, cur.AlertedAt, cur.Alerts = next, a.now(), cur.Alerts+1
				if err := a.store.PutDoc("fault", f.ID, cur); err == nil {
					a.faults[f.ID] = cur
				}
			}
			a.mu.Unlock()
		}
	}
}

// reportLoop publishes telemetry when due and exports new ledger entries to central.
func (a *Agent) reportLoop(ctx context.Context) {
	var exported uint64
	_, _ = a.store.GetDoc("export", "ledger", &exported)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if now := a.now(); now.Sub(last) >= a.Settings().TelemetryEvery {
			if err := a.up.Telemetry(pctx, a.Telemetry()); err != nil {
				a.log.Debug("telemetry not sent", "err", err)
			} else {
				last = now
			}
		}
		exported = a.exportLedger(pctx, exported)
		cancel()
		for taken := false; !taken; { // central's acknowledgements of the ledger so far
			select {
			case ack := <-a.up.LedgerAcks():
				a.takeLedgerAck(ack)
			default:
				taken = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Ledger batches: at most ledgerBatchEntries entries and ledgerBatchBytes of JSON, well
// below the broker's message size limit (mosquitto's message_size_limit 1049600 drops a
// larger message and still acknowledges it at QoS 1: the batch would be lost unseen).
const (
	ledgerBatchEntries = 200
	ledgerBatchBytes   = 512 << 10
)

// exportLedger sends ledger entries after seq to central in batches, each entry as stored
// (central recomputes its hash), and returns the last one central's broker took.
func (a *Agent) exportLedger(ctx context.Context, seq uint64) uint64 {
	for seq < a.store.LedgerHead() {
		raw, last, err := a.store.LedgerBatch(seq+1, ledgerBatchEntries, ledgerBatchBytes)
		if err != nil || len(raw) == 0 {
			return seq
		}
		msg := wire.LedgerMsg{}
		for _, e := range raw {
			msg.Entries = append(msg.Entries, json.RawMessage(e))
		}
		if err := a.up.Ledger(ctx, msg); err != nil {
			return seq
		}
		seq = last
		if err := a.store.PutDoc("export", "ledger", seq); err != nil {
			return seq
		}
	}
	return seq
}

// takeLedgerAck keeps the head central acknowledged as the ledger's anchor (doc
// ledger/anchor), if it is past the one kept: verification then checks the local entry at
// that seq has central's hash. An error means central found the exported ledger does not
// chain to what it holds: logged here (not recorded in the ledger, whose next export would
// break again and record again); the head it names is still central's, and kept.
func (a *Agent) takeLedgerAck(ack wire.LedgerAckMsg) {
	if ack.Error != "" {
		a.log.Error("ledger: central reports a ledger break", "err", ack.Error, "central_head", ack.HeadSeq)
	}
	if ack.HeadSeq == 0 {
		return
	}
	if _, err := a.store.SetAnchor(queue.Anchor{Seq: ack.HeadSeq, Hash: ack.HeadHash, Time: a.now()}); err != nil {
		a.log.Warn("ledger: anchor not kept", "seq", ack.HeadSeq, "err", err)
	}
}

// boardTemp reads the board's thermal sensor. The sensor is optional: a board without one
// (or a read that fails) reports no temperature, logged once, and the agent carries on.
func (a *Agent) boardTemp() *float64 {
	if a.board.Thermal == "" {
		return nil
	}
	b, err := os.ReadFile(a.board.Thermal)
	var milli float64
	if err == nil {
		_, err = fmt.Sscan(string(b), &milli)
	}
	if err != nil {
		a.thermalOnce.Do(func() { a.log.Warn("board temperature unavailable", "sensor", a.board.Thermal, "err", err) })
		return nil
	}
	c := milli / 1000
	return &c
}

// Telemetry is the dock's report of its slots and queue now.
func (a *Agent) Telemetry() wire.TelemetryMsg {
	t := wire.TelemetryMsg{Time: a.now(), Config: a.Settings().Version}
	for _, s := range a.slots {
		t.Slots = append(t.Slots, s.telemetry())
	}
	if st, err := a.store.Stats(); err == nil {
		t.Queue = wire.QueueTelemetry{
			Pending: st.Count[queue.Spooled] + st.Count[queue.Uploading], PendingBytes: st.Bytes[queue.Spooled] + st.Bytes[queue.Uploading],
			Verified: st.Count[queue.Verified], Freed: st.Count[queue.Freed], Oldest: st.Oldest,
		}
	}
	if free, err := a.store.Spool().FreeBytes(); err == nil {
		t.Queue.SpoolFree = free
	}
	t.BoardTempC = a.boardTemp()
	return t
}
