package console

import (
	"context"
	"slices"
	"sync"
	"testing"

	"dock/uplink/central/fleet"
	"dock/uplink/wire"
)

// recordingDispatcher keeps what the console sent docks.
type recordingDispatcher struct {
	mu     sync.Mutex
	pushed []string // dock:version
}

func (d *recordingDispatcher) Command(context.Context, string, wire.CommandMsg) error { return nil }

func (d *recordingDispatcher) PushConfig(_ context.Context, dock string, c wire.ConfigMsg) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pushed = append(d.pushed, dock)
	return nil
}

func (d *recordingDispatcher) docks() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.pushed)
}

// The rollout state machine: canaries first; the rest only once every canary applied the
// version; a canary that rejects it (or rolls it back) stops the rollout and nothing more
// is pushed.
func TestRolloutCanaryFirstAndStopOnRejection(t *testing.T) {
	for _, c := range []struct {
		name     string
		answer   wire.ReportedMsg // what canary dock-a reports
		state    string
		pushedTo []string
	}{
		{"canary applied", wire.ReportedMsg{Version: 1, Status: "applied", Active: 1}, fleet.RolloutRest, []string{"dock-a", "dock-b", "dock-c"}},
		{"canary rejected", wire.ReportedMsg{Version: 1, Status: "rejected", Reason: "config expired"}, fleet.RolloutStopped, []string{"dock-a"}},
		{"canary rolled back", wire.ReportedMsg{Version: 1, Status: "rolled-back", Active: 0, Reason: "broker unreachable"}, fleet.RolloutStopped, []string{"dock-a"}},
		{"canary silent", wire.ReportedMsg{}, fleet.RolloutCanary, []string{"dock-a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := fleet.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			d := &recordingDispatcher{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := &Server{o: Options{DB: db, Docks: d}}
			s.o.Log = discardLog()
			if _, err := db.StartRollout(1, `{"team":"T"}`, []string{"dock-a", "dock-b", "dock-c"}, 1, "all", "admin"); err != nil {
				t.Fatal(err)
			}
			s.stepRollouts(ctx)
			if got := d.docks(); !slices.Equal(got, []string{"dock-a"}) {
				t.Fatalf("first step pushed to %v, want the canary only", got)
			}
			if c.answer.Status != "" {
				if err := db.DockReported("dock-a", c.answer); err != nil {
					t.Fatal(err)
				}
			}
			s.stepRollouts(ctx)
			s.stepRollouts(ctx)
			rs, _ := db.Rollouts(1)
			if rs[0].State != c.state || !slices.Equal(d.docks(), c.pushedTo) {
				t.Fatalf("state %s (%s), pushed to %v; want %s, %v", rs[0].State, rs[0].Reason, d.docks(), c.state, c.pushedTo)
			}
			if c.state == fleet.RolloutRest {
				for _, dock := range []string{"dock-b", "dock-c"} {
					_ = db.DockReported(dock, wire.ReportedMsg{Version: 1, Status: "applied", Active: 1})
				}
				s.stepRollouts(ctx)
				if rs, _ := db.Rollouts(1); rs[0].State != fleet.RolloutDone {
					t.Fatalf("every dock applied: state %s", rs[0].State)
				}
			}
		})
	}
}

// A new rollout supersedes one still running, which then pushes nothing more (its older
// version would replace the new one's retained config); versions a dock reports count
// for the next version only within bounds.
func TestNewRolloutSupersedesTheRunningOne(t *testing.T) {
	db, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := &recordingDispatcher{}
	s := &Server{o: Options{DB: db, Docks: d, Log: discardLog()}}
	ctx := context.Background()
	if _, err := db.StartRollout(1, `{"team":"T"}`, []string{"dock-a", "dock-b"}, 1, "all", "admin"); err != nil {
		t.Fatal(err)
	}
	s.stepRollouts(ctx) // dock-a has version 1, which it never applies (offline)
	if _, err := db.StartRollout(2, `{"team":"T2"}`, []string{"dock-b"}, 1, "dock dock-b", "admin"); err != nil {
		t.Fatal(err)
	}
	_ = db.DockReported("dock-a", wire.ReportedMsg{Version: 2, Status: "applied", Active: 2})
	s.stepRollouts(ctx)
	s.stepRollouts(ctx)
	rs, _ := db.Rollouts(2)
	if rs[1].State != fleet.RolloutStopped || rs[0].State != fleet.RolloutCanary {
		t.Fatalf("rollouts %s (%s), %s: want the first stopped, superseded", rs[1].State, rs[1].Reason, rs[0].State)
	}
	if got := d.docks(); !slices.Equal(got, []string{"dock-a", "dock-b"}) {
		t.Fatalf("pushed %v: the superseded rollout pushed its version again", got)
	}
	_ = db.DockReported("dock-b", wire.ReportedMsg{Version: 1 << 62, Status: "applied", Active: 1 << 62})
	if v, err := db.NextConfigVersion(); err != nil || v != 3 {
		t.Fatalf("next version %d %v, want 3 (a dock reporting 2^62 is not believed)", v, err)
	}
}

// Central restarted mid-rollout goes on where it was: the rollout lives in the database.
func TestRolloutGoesOnAfterARestart(t *testing.T) {
	dir := t.TempDir()
	db, err := fleet.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &recordingDispatcher{}
	s := &Server{o: Options{DB: db, Docks: d, Log: discardLog()}}
	if _, err := db.StartRollout(1, `{"team":"T"}`, []string{"dock-a", "dock-b"}, 1, "all", "admin"); err != nil {
		t.Fatal(err)
	}
	s.stepRollouts(context.Background())
	db.Close() // central stops with the canary pushed

	db, err = fleet.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.DockReported("dock-a", wire.ReportedMsg{Version: 1, Status: "applied", Active: 1}) // the retained report
	s = &Server{o: Options{DB: db, Docks: d, Log: discardLog()}}
	s.stepRollouts(context.Background())
	s.stepRollouts(context.Background())
	if got := d.docks(); !slices.Equal(got, []string{"dock-a", "dock-b"}) {
		t.Fatalf("pushed %v, want the canary once, then the rest", got)
	}
	if rs, _ := db.Rollouts(1); rs[0].State != fleet.RolloutRest {
		t.Fatalf("state %s", rs[0].State)
	}
}
