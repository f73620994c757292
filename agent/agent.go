package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"dock/agent/version"
	"dock/board"
	"dock/hw"
	"dock/queue"
	"dock/uplink"
	"dock/uplink/clock"
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
	// wall is the agent's time source for its tickers, timeouts and stamps (nil: the
	// real clock; see SetClock).
	wall clock.Clock
	// floor is the earliest plausible time for the clock (see clockFloor).
	floor     time.Time
	floorFrom string

	slots   []*slot
	faults  *faultRegistry
	config  *configIntake
	metrics *metrics

	metricsAddr atomic.Value // string
	thermalOnce sync.Once

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
	a := &Agent{cfg: cfg, board: b, store: store, up: up, log: log}
	a.now = func() time.Time { return a.timeSource().Now().UTC() }
	a.record = store.Record
	a.floor, a.floorFrom = clockFloor(store)
	now := func() time.Time { return a.now() } // a.now as it is when called (see UseClock)
	a.config = &configIntake{cfg: cfg, putDoc: store.PutDoc, note: a.note, log: log, now: now}
	if up != nil {
		a.config.report = up.ReportConfig
	}
	if err := a.config.load(store); err != nil {
		return nil, err
	}
	var err error
	if a.faults, err = newFaultRegistry(store, log, now); err != nil {
		return nil, err
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
func (a *Agent) Settings() Settings { return a.config.settings() }

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
	sock := a.cfg.ControlSocketPath()
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
	a.log.Info("dock agent running", "dock", a.cfg.Dock, "board", a.board.Name, "slots", len(a.slots), "version", version.Version)
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
			a.config.apply(ctx, m)
		case c := <-a.up.Commands():
			if err := a.command(c); err != nil {
				a.log.Warn("command refused", "kind", c.Kind, "err", err)
				a.note(queue.Event{Kind: queue.EvInput, Detail: fmt.Sprintf("command %s refused: %v", c.Kind, err)})
			}
		case r := <-a.up.Rejects():
			if r.Config != nil {
				a.config.refused(ctx, *r.Config, r.Err) // its seal: central hears why
				continue
			}
			a.note(queue.Event{Kind: queue.EvInput, Detail: fmt.Sprintf("message on %s rejected: %v", r.Topic, r.Err)})
		}
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

// SetClock makes c the agent's time source (its loops' tickers, the copy watchdog, the
// bays' polls, and what it stamps unless UseClock replaced that); tests give a clock.Fake.
// Call it before Run.
func (a *Agent) SetClock(c clock.Clock) { a.wall = c }

// timeSource is the agent's clock: the one SetClock gave, or the real one.
func (a *Agent) timeSource() clock.Clock { return clock.Or(a.wall) }
