package simrun

import (
	"strings"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/wire"
)

// A config central signed for this dock but expired is refused; the next one central
// pushes is applied: no config but central's own, current one, holds the dock.
func TestSignedExpiredConfigRefused(t *testing.T) {
	ctx, h := startHarness(t, 30*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	old := wire.ConfigMsg{Version: 9, Team: "Stale", Expires: time.Now().Add(-time.Minute).UTC()}
	wire.SealFor(&old, "dock-sim-1", uint64(time.Now().UnixNano()), h.CentralKey)
	report := func(version int64) wire.ReportedMsg {
		t.Helper()
		var rep wire.ReportedMsg
		if err := WaitFor(ctx, "config report", func() bool {
			var ok bool
			rep, ok = h.Central.Reported("dock-sim-1")
			return ok && rep.Version == version
		}); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if err := h.Central.PublishConfig(ctx, "dock-sim-1", old); err != nil {
		t.Fatal(err)
	}
	if rep := report(9); rep.Status != "rejected" || !strings.Contains(rep.Reason, "expired") {
		t.Errorf("expired config: reported %+v", rep)
	}
	if err := h.Central.PushConfig(ctx, "dock-sim-1", wire.ConfigMsg{Version: 2, Team: "Current"}); err != nil {
		t.Fatal(err)
	}
	if rep := report(2); rep.Status != "applied" || h.Agent.Settings().Team != "Current" {
		t.Errorf("current config after an expired one: reported %+v, in force %+v", rep, h.Agent.Settings())
	}
}

// A custody command must say who ordered it: release-hold without By is refused and the
// hold stays; with By the release is recorded with its name and the copy freed.
func TestSignedReleaseHoldNeedsBy(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	cam, want, err := h.NewCamera("CAM-H", "OF-H", 2, 50_000, 7, map[int]string{0: "dispute", 1: "dispute"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(0, cam)
	var id string
	if err := WaitFor(ctx, "a held recording verified", func() bool {
		for k := range want {
			if r, err := h.Store.Get(k); err == nil && r.State == queue.Verified && r.Hold != "" {
				id = k
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.Central.Command(ctx, "dock-sim-1", wire.CommandMsg{Kind: "release-hold", Recording: id}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "release without by refused", func() bool {
		return ledgerHas(h, queue.EvInput, "command release-hold refused") && ledgerHas(h, queue.EvInput, "without who ordered it")
	}); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.Store.Get(id); r.Released || r.State != queue.Verified {
		t.Errorf("after a release without by: %+v", r)
	}
	if err := h.Central.Command(ctx, "dock-sim-1", wire.CommandMsg{Kind: "release-hold", Recording: id, By: "sgt-2"}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "hold released by sgt-2 and copy freed", func() bool {
		r, err := h.Store.Get(id)
		return err == nil && r.State == queue.Freed && ledgerHas(h, queue.EvHold, `ordered by "sgt-2"`)
	}); err != nil {
		t.Error(err)
	}
}
