package agent

import (
	"context"
	"time"

	"dock/health"
)

// selfHealth applies the dock-level rules every interval: broker reachability, backlog
// age, board temperature, and article 11 (every device central assigned docks daily).
// These are conditions, not broken devices: each clears itself once it no longer holds.
func (a *Agent) selfHealth(ctx context.Context, every time.Duration) {
	since := a.now()
	var downSince time.Time
	t, ticks := a.timeSource().NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		now := a.now()
		r := health.DockReading{Now: now, Since: since, BoardC: a.boardTemp(), LastDocked: map[string]time.Time{}, Clock: a.clock()}
		if a.up != nil && !a.up.Connected() {
			if downSince.IsZero() {
				downSince = now
			}
			r.BrokerDownFor = now.Sub(downSince)
			a.config.rollbackIfCutOff(downSince, a.cfg.RollbackAfter.D())
		} else {
			downSince = time.Time{}
			a.config.reportRollback(ctx)
		}
		if st, err := a.store.Stats(); err == nil {
			r.OldestPending = st.Oldest
		}
		for dev := range a.Settings().Officers {
			r.LastDocked[dev] = a.device(dev).LastDocked
		}
		holds := map[string]bool{}
		for _, v := range health.EvaluateDock(r, a.Settings().DockLimits) {
			device := a.cfg.Dock
			if v.Device != "" {
				device = v.Device
			}
			holds[health.FaultID(device, v.Code)] = true
			a.raise(-1, device, health.Verdict{Code: v.Code, Detail: v.Detail})
		}
		for _, f := range a.Faults() {
			switch f.Code {
			case health.BrokerUnreachable, health.BacklogStale, health.NotDocked, health.BoardHot, health.ClockUnverified:
				if f.State != health.Cleared && !holds[f.ID] {
					if err := a.faultEvent(f.ID, health.EvClear, "dock: condition no longer holds"); err != nil {
						a.log.Error("clear dock condition", "fault", f.ID, "err", err)
					}
				}
			}
		}
	}
}
