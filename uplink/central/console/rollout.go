package console

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"dock/uplink/central/fleet"
	"dock/uplink/wire"
)

// rolloutTick is how often running rollouts are looked at.
const rolloutTick = 500 * time.Millisecond

// runRollouts moves the running rollouts on until ctx ends.
func (s *Server) runRollouts(ctx context.Context) {
	t := time.NewTicker(rolloutTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.stepRollouts(ctx)
		}
	}
}

// stepRollouts is the rollout state machine, one step for each running rollout, all from
// the database (a restarted central picks up where it was): push the current wave's docks
// not yet pushed; stop at the first dock that rejected or rolled the version back; once
// every canary applied it, push the rest; once every dock applied it, done.
func (s *Server) stepRollouts(ctx context.Context) {
	s.rolloutMu.Lock() // the ticker and a new rollout's first step
	defer s.rolloutMu.Unlock()
	rs, err := s.o.DB.Rollouts(20)
	if err != nil {
		s.o.Log.Error("console: reading rollouts", "err", err)
		return
	}
	for _, ro := range rs {
		if ro.State != fleet.RolloutCanary && ro.State != fleet.RolloutRest {
			continue
		}
		if err := s.stepRollout(ctx, ro); err != nil {
			s.o.Log.Error("console: rollout", "rollout", ro.ID, "version", ro.Version, "err", err)
		}
	}
}

func (s *Server) stepRollout(ctx context.Context, ro fleet.Rollout) error {
	wave := 0
	if ro.State == fleet.RolloutRest {
		wave = 1
	}
	waiting := 0
	for _, d := range ro.Docks {
		if d.Reported == ro.Version && (d.Status == "rejected" || d.Status == "rolled-back") {
			why := fmt.Sprintf("dock %s %s version %d: %s", d.Dock, d.Status, ro.Version, d.Reason)
			s.o.Log.Warn("console: rollout stopped", "rollout", ro.ID, "dock", d.Dock, "status", d.Status, "reason", d.Reason)
			return s.o.DB.SetRolloutState(ro.ID, fleet.RolloutStopped, why)
		}
	}
	for _, d := range ro.Docks {
		if d.Wave != wave {
			continue
		}
		if d.Pushed.IsZero() {
			if err := s.push(ctx, ro, d.Dock); err != nil {
				return err
			}
		}
		if d.Active < ro.Version {
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return nil
	case wave == 0 && len(ro.Docks) > ro.Canary:
		return s.o.DB.SetRolloutState(ro.ID, fleet.RolloutRest, fmt.Sprintf("%d canary dock(s) applied version %d", ro.Canary, ro.Version))
	default:
		return s.o.DB.SetRolloutState(ro.ID, fleet.RolloutDone, fmt.Sprintf("%d dock(s) applied version %d", len(ro.Docks), ro.Version))
	}
}

// push sends a dock its desired config, signed by central's key and sealed for it.
func (s *Server) push(ctx context.Context, ro fleet.Rollout, dock string) error {
	c, err := s.o.DB.ConfigByVersion(ro.Version)
	if err != nil {
		return err
	}
	var m wire.ConfigMsg
	if err := json.Unmarshal([]byte(c.Body), &m); err != nil {
		return fmt.Errorf("config %d: %w", ro.Version, err)
	}
	m.Version = ro.Version
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.o.Docks.PushConfig(pctx, dock, m); err != nil {
		return fmt.Errorf("push version %d to %s: %w", ro.Version, dock, err)
	}
	s.o.Log.Info("console: config pushed", "rollout", ro.ID, "dock", dock, "version", ro.Version)
	return s.o.DB.MarkPushed(ro.ID, dock, ro.Version)
}

// diffLine is one line of a config diff: Op is ' ', '-' or '+'.
type diffLine struct {
	Op   string
	Text string
}

// diffConfigs is the line diff of two configs' indented JSON (versions and seals aside).
func diffConfigs(old, cur wire.ConfigMsg) []diffLine {
	lines := func(c wire.ConfigMsg) []string {
		c.Version, c.Seal, c.Expires = 0, wire.Seal{}, time.Time{}
		if len(c.Thresholds) > 0 {
			var v any
			if json.Unmarshal(c.Thresholds, &v) == nil {
				c.Thresholds, _ = json.Marshal(v)
			}
		}
		b, _ := json.MarshalIndent(c, "", "  ")
		return strings.Split(string(b), "\n")
	}
	a, b := lines(old), lines(cur)
	// Longest common subsequence, table from the end: configs are a few dozen lines.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []diffLine
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, diffLine{" ", a[i]})
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, diffLine{"+", b[j]})
			j++
		default:
			out = append(out, diffLine{"-", a[i]})
			i++
		}
	}
	return out
}
