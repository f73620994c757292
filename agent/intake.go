package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"dock/health"
	"dock/queue"
	"dock/uplink/wire"
)

// settingsState is the settings in force and what a rollback needs. It is replaced whole
// on every change (copy-on-write), never modified.
type settingsState struct {
	settings Settings
	// The settings before the last applied config, and when it was applied: if the dock
	// cannot reach the broker for RollbackAfter after a change, it returns to them.
	previous   *Settings
	appliedAt  time.Time
	rolledBack *Settings // reported to central once the broker is back
}

// configIntake takes central's configs: it checks the seal and every field, applies a
// config atomically, persists it (document config/central), reports the outcome, and
// rolls a config back when it cut the dock off. Readers load the settings in force
// without a lock; a change persists first (a synced commit) and then publishes. Changes
// are ordered by mu, which no reader takes, so Settings never waits on a commit.
type configIntake struct {
	cfg    Config
	putDoc func(kind, id string, v any, events ...queue.Event) error // the store's PutDoc
	note   func(queue.Event) error
	report func(context.Context, wire.ReportedMsg) error // nil without an uplink
	log    *slog.Logger
	now    func() time.Time

	mu    sync.Mutex // orders changes
	state atomic.Pointer[settingsState]
}

// load starts from the config's settings, or the ones central pushed last (in store).
func (c *configIntake) load(store *queue.Store) error {
	st := &settingsState{settings: initialSettings(c.cfg)}
	var saved Settings
	if ok, err := store.GetDoc("config", "central", &saved); err != nil {
		return fmt.Errorf("load settings: %w", err)
	} else if ok {
		if saved.DockLimits == (health.DockLimits{}) {
			saved.DockLimits = health.DefaultDockLimits() // saved by a version without them
		}
		st.settings = saved
	}
	c.state.Store(st)
	return nil
}

// settings returns the settings in force.
func (c *configIntake) settings() Settings { return c.state.Load().settings }

// apply applies a config central pushed, or rejects it, and reports which to central.
func (c *configIntake) apply(ctx context.Context, m wire.ConfigMsg) {
	c.mu.Lock()
	st := c.state.Load()
	cur := st.settings
	if m.Version == cur.Version || (m.Version == cur.RolledBack && st.rolledBack != nil) {
		c.mu.Unlock()
		return // the retained config we already run, or just undid (redelivered on reconnect)
	}
	next := cur
	err := c.checkSignature(m)
	if err == nil {
		next, err = cur.apply(m)
	}
	if err == nil {
		err = c.putDoc("config", "central", next, queue.Event{Kind: queue.EvConfig, Detail: fmt.Sprintf("applied version %d (was %d)", next.Version, cur.Version)})
		if err == nil {
			prev := cur
			c.state.Store(&settingsState{settings: next, previous: &prev, appliedAt: c.now(), rolledBack: st.rolledBack})
		}
	}
	c.mu.Unlock()
	rep := wire.ReportedMsg{Version: m.Version, Status: "applied", Active: next.Version, Time: c.now()}
	if err != nil {
		rep.Status, rep.Reason, rep.Active = "rejected", err.Error(), cur.Version
		c.log.Warn("config rejected", "version", m.Version, "reason", err)
		c.note(queue.Event{Kind: queue.EvConfig, Detail: fmt.Sprintf("rejected version %d: %v", m.Version, err)})
	} else {
		c.log.Info("config applied", "version", next.Version, "team", next.Team)
	}
	if err := c.sendReport(ctx, rep); err != nil {
		c.log.Warn("config report not sent", "err", err)
	}
}

// sendReport tells central what became of a config.
func (c *configIntake) sendReport(ctx context.Context, rep wire.ReportedMsg) error {
	if c.report == nil {
		return fmt.Errorf("no uplink")
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.report(pctx, rep)
}

// rollbackIfCutOff returns to the settings before the last config when the broker has
// been unreachable since shortly after it was applied, for longer than rollbackAfter: a
// config that cut the dock off must not strand it. It reports whether it rolled back.
func (c *configIntake) rollbackIfCutOff(downSince time.Time, rollbackAfter time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state.Load()
	if st.previous == nil || downSince.IsZero() || downSince.Before(st.appliedAt) || c.now().Sub(downSince) < rollbackAfter {
		return false
	}
	bad, prev := st.settings, *st.previous
	prev.RolledBack = bad.Version
	if err := c.putDoc("config", "central", prev, queue.Event{Kind: queue.EvConfig,
		Detail: fmt.Sprintf("rolled back version %d to %d: broker unreachable for %s since it was applied", bad.Version, prev.Version, rollbackAfter)}); err != nil {
		c.log.Error("config rollback not persisted", "err", err)
		return false
	}
	c.state.Store(&settingsState{settings: prev, appliedAt: st.appliedAt, rolledBack: &bad})
	c.log.Warn("config rolled back", "from", bad.Version, "to", prev.Version)
	return true
}

// reportRollback tells central, once reachable again, that the dock undid its config.
func (c *configIntake) reportRollback(ctx context.Context) {
	st := c.state.Load()
	bad, active := st.rolledBack, st.settings.Version
	if bad == nil || c.report == nil {
		return
	}
	rep := wire.ReportedMsg{Version: bad.Version, Status: "rolled-back", Reason: "broker unreachable after it was applied", Active: active, Time: c.now()}
	if err := c.sendReport(ctx, rep); err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.state.Load(); st.rolledBack == bad {
		next := *st
		next.rolledBack = nil
		c.state.Store(&next)
	}
}

// checkSignature refuses a config that central did not sign for this dock, or that has
// expired: the broker connection being authenticated is not enough. The uplink checked
// the seal already; this is the agent's own word on what it applies.
func (c *configIntake) checkSignature(m wire.ConfigMsg) error {
	key := c.cfg.centralKey()
	if key == nil {
		return fmt.Errorf("no central_key configured: configs cannot be verified, none is accepted")
	}
	if err := wire.Open(&m, key, c.cfg.Dock); err != nil {
		return err
	}
	if now := c.now(); m.Expires.IsZero() || !now.Before(m.Expires) {
		return fmt.Errorf("config expired at %s (now %s)", m.Expires.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return nil
}

// refused records and reports a config the uplink refused for its seal.
func (c *configIntake) refused(ctx context.Context, m wire.ConfigMsg, err error) {
	active := c.settings().Version
	c.log.Warn("config rejected", "version", m.Version, "reason", err)
	c.note(queue.Event{Kind: queue.EvConfig, Detail: fmt.Sprintf("rejected version %d: %v", m.Version, err)})
	rep := wire.ReportedMsg{Version: m.Version, Status: "rejected", Reason: err.Error(), Active: active, Time: c.now()}
	if err := c.sendReport(ctx, rep); err != nil {
		c.log.Warn("config report not sent", "err", err)
	}
}
