package uplink

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// Only what central signed for this dock reaches a consumer (DESIGN.md, invariant 8):
// unsigned, signed by another key, sealed for another dock, or a grant or command not
// newer than the last taken, is refused and reported through Rejects.
func TestRouteRefusesWhatCentralDidNotSeal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := mqtttest.Start(t, "")
	u := dialDock(t, ctx, b)
	office := officeConn(t, ctx, b)
	_, stranger, _ := ed25519.GenerateKey(nil)
	grant := func(id string) *wire.GrantMsg { return &wire.GrantMsg{ID: id, ChunkSize: wire.MinChunk, Window: 1} }
	pub := func(leaf string, m any) {
		t.Helper()
		p, _ := json.Marshal(m)
		if err := office.Publish(ctx, wire.CentralTopic(dockName, leaf), 1, false, p); err != nil {
			t.Fatal(err)
		}
	}
	otherKey := grant("g-stranger")
	wire.SealFor(otherKey, dockName, 50, stranger)
	otherDock := grant("g-other-dock")
	wire.SealFor(otherDock, "d2", 51, centralKey)
	refused := []struct {
		leaf string
		m    any
		why  string
	}{
		{wire.TopicGrant, grant("g-unsigned"), "unsigned"},
		{wire.TopicGrant, otherKey, "not signed by central"},
		{wire.TopicGrant, otherDock, "another dock"},
		{wire.TopicReceipt, &wire.ReceiptMsg{Recording: "r", Size: 1, SHA256: strings.Repeat("ab", 32)}, "unsigned"},
		{wire.TopicAck, &wire.AckMsg{Recording: "r", Offset: 1}, "unsigned"},
		{wire.TopicCommand, &wire.CommandMsg{Kind: "release-hold", Recording: "r", By: "x"}, "unsigned"},
		{wire.TopicConfig, &wire.ConfigMsg{Version: 9, Team: "M"}, "unsigned"},
	}
	for _, r := range refused {
		pub(r.leaf, r.m)
		select {
		case rj := <-u.Rejects():
			if !strings.Contains(rj.Err.Error(), r.why) || !strings.HasSuffix(rj.Topic, r.leaf) {
				t.Errorf("%s: rejected as %v on %s, want %q", r.leaf, rj.Err, rj.Topic, r.why)
			}
			if r.leaf == wire.TopicConfig && (rj.Config == nil || rj.Config.Version != 9) {
				t.Errorf("refused config not handed over for its report: %+v", rj.Config)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s (%s) not rejected", r.leaf, r.why)
		}
	}
	// A sealed grant goes through; the same again, or an older one, is a replay.
	pub(wire.TopicGrant, sealed(grant("g-10"), 10))
	pub(wire.TopicGrant, sealed(grant("g-10"), 10))
	pub(wire.TopicGrant, sealed(grant("g-9"), 9))
	pub(wire.TopicCommand, sealed(&wire.CommandMsg{Kind: "sample", By: "x"}, 10))
	pub(wire.TopicCommand, sealed(&wire.CommandMsg{Kind: "sample", By: "x"}, 10))
	for i := range 3 {
		select {
		case rj := <-u.Rejects():
			if !errors.Is(rj.Err, ErrStale) {
				t.Errorf("replay %d rejected as %v", i, rj.Err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("replay %d not rejected", i)
		}
	}
	select {
	case g := <-u.grants:
		if g.ID != "g-10" {
			t.Errorf("grant %s taken", g.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sealed grant did not arrive")
	}
	select {
	case g := <-u.grants:
		t.Errorf("grant %s (seq %d) taken after its replay was refused", g.ID, g.Seq)
	case rj := <-u.Rejects():
		t.Errorf("unexpected reject %v", rj.Err)
	case <-time.After(300 * time.Millisecond):
	}
	if len(u.Commands()) != 1 {
		t.Errorf("%d commands delivered, want 1", len(u.Commands()))
	}
}

// A receipt signed by central applies only to a recording uploaded whole: one naming the
// right hash and size of a recording never sent frees nothing.
func TestReceiptBeforeUploadFreesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := mqtttest.Start(t, "")
	store := openStore(t)
	rec := spool(t, store, "CAM-1_early.mp4", time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), 64<<10)
	u := dialDock(t, ctx, b)
	runSender(t, ctx, NewSender(u, store, testLog()))
	office := officeConn(t, ctx, b)
	p, _ := json.Marshal(sealed(&wire.ReceiptMsg{Recording: rec.ID, Size: rec.Size, SHA256: rec.SHA256}, 1))
	if err := office.Publish(ctx, wire.CentralTopic(dockName, wire.TopicReceipt), 1, false, p); err != nil {
		t.Fatal(err)
	}
	select {
	case rj := <-u.Rejects():
		if !errors.Is(rj.Err, ErrEarlyReceipt) {
			t.Errorf("rejected as %v", rj.Err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the early receipt was not rejected")
	}
	if st := state(store, rec.ID); st != queue.Spooled {
		t.Errorf("after a receipt for a recording never sent it is %s", st)
	}
}
