package simrun

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// Issue #14 findings 1 and 2, end to end (DESIGN.md, invariant 8): a client on the broker
// that is not central publishes a grant, then a receipt naming the RIGHT hash and size of
// a spooled recording. The dock must start no transfer for the forged grant and free
// nothing; both messages are rejected into the ledger.
func TestSignedForgedGrantAndReceiptFreeNothing(t *testing.T) {
	ctx, h := startHarness(t, 40*time.Second, Options{Dir: t.TempDir(), Slots: 1, NoCentral: true, Log: testLog(t)})
	cam, want, err := h.NewCamera("CAM-F", "OF-F", 1, 50_000, 5, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: h.BrokerURL, ClientID: "forger", CleanSession: true,
		Subscriptions: map[string]byte{wire.DockTopic("dock-sim-1", "transfer/#"): 1}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	_ = h.Dock.Dock(0, cam)
	var id string
	for k := range want {
		id = k
	}
	if err := WaitFor(ctx, "spooled", func() bool { r, err := h.Store.Get(id); return err == nil && r.State == queue.Spooled }); err != nil {
		t.Fatal(err)
	}
	rec, _ := h.Store.Get(id)
	grant, _ := json.Marshal(wire.GrantMsg{ID: "forged", ChunkSize: wire.MinChunk, Window: 4})
	if err := forger.Publish(ctx, wire.CentralTopic("dock-sim-1", wire.TopicGrant), 1, false, grant); err != nil {
		t.Fatal(err)
	}
	// The forged grant must start no transfer: nothing on the dock's transfer topics.
	if got := collect(forger, 2*time.Second); len(got) != 0 {
		t.Errorf("the dock started a transfer on a forged grant: %v", got)
	}
	receipt, _ := json.Marshal(wire.ReceiptMsg{Recording: id, Size: rec.Size, SHA256: rec.SHA256, Stored: time.Now().UTC()})
	if err := forger.Publish(ctx, wire.CentralTopic("dock-sim-1", wire.TopicReceipt), 1, false, receipt); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "forged receipt rejected into the ledger", func() bool { return ledgerHas(h, queue.EvInput, "receipt rejected") }); err != nil {
		t.Error(err)
	}
	time.Sleep(time.Second) // anything the receipt set off has happened
	if got, _ := h.Store.Get(id); got.State != queue.Spooled {
		t.Errorf("after a forged grant and receipt the recording is %s, want %s", got.State, queue.Spooled)
	}
	if _, err := os.Stat(filepath.Join(h.Store.Spool().Dir(), id+".rec")); err != nil {
		t.Error("the only copy is gone after a forged receipt:", err)
	}
	if !ledgerHas(h, queue.EvInput, "grant rejected") {
		t.Error("no ledger entry for the forged grant")
	}
}

// A grant or command that central did sign, captured off the broker and published again,
// is refused: each must be newer than the last of its kind the dock took.
func TestSignedReplayedGrantAndCommandRefused(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	spy, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: h.BrokerURL, ClientID: "spy", CleanSession: true,
		Subscriptions: map[string]byte{wire.CentralTopic("dock-sim-1", "#"): 1}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	captured := map[string][]byte{}
	capture := func(leaf string) []byte {
		t.Helper()
		for captured[leaf] == nil {
			select {
			case m := <-spy.Inbox():
				if _, l, ok := wire.SplitTopic(wire.CentralRoot, m.Topic); ok && captured[l] == nil {
					captured[l] = m.Payload
				}
			case <-ctx.Done():
				t.Fatalf("no %s captured", leaf)
			}
		}
		return captured[leaf]
	}
	cam, want, err := h.NewCamera("CAM-P", "OF-P", 1, 50_000, 6, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(0, cam)
	var id string
	for k := range want {
		id = k
	}
	grant := capture(wire.TopicGrant)
	if err := WaitFor(ctx, "uploaded and verified", func() bool {
		r, err := h.Store.Get(id)
		return err == nil && (r.State == queue.Verified || r.State == queue.Freed)
	}); err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Format("2006-01-02")
	if err := h.Central.Command(ctx, "dock-sim-1", wire.CommandMsg{Kind: "sample", Device: "CAM-P", Day: day, Count: 1, By: "sgt-1"}); err != nil {
		t.Fatal(err)
	}
	command := capture(wire.TopicCommand)
	if err := WaitFor(ctx, "spot check applied", func() bool { return ledgerCount(h, queue.EvAccess, "spot check") == 1 }); err != nil {
		t.Fatal(err)
	}
	replayer, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: h.BrokerURL, ClientID: "replayer", CleanSession: true}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer replayer.Close()
	for leaf, p := range map[string][]byte{wire.TopicGrant: grant, wire.TopicCommand: command} {
		if err := replayer.Publish(ctx, wire.CentralTopic("dock-sim-1", leaf), 1, false, p); err != nil {
			t.Fatal(err)
		}
		if err := WaitFor(ctx, "replayed "+leaf+" refused", func() bool {
			return ledgerHas(h, queue.EvInput, leaf+" rejected") && ledgerHas(h, queue.EvInput, "not newer")
		}); err != nil {
			t.Error(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := ledgerCount(h, queue.EvAccess, "spot check"); n != 1 {
		t.Errorf("the spot check ran %d times: its replay was applied", n)
	}
}

// A config central signed for another dock is refused by this one, though the signature
// is good: it names its dock.
func TestSignedConfigForAnotherDockRefused(t *testing.T) {
	ctx, h := startHarness(t, 30*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	spy, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: h.BrokerURL, ClientID: "spy", CleanSession: true,
		Subscriptions: map[string]byte{wire.CentralTopic("dock-a", wire.TopicConfig): 1}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	if err := h.Central.PushConfig(ctx, "dock-a", wire.ConfigMsg{Version: 7, Team: "Team-A"}); err != nil {
		t.Fatal(err)
	}
	var p []byte
	select {
	case m := <-spy.Inbox():
		p = m.Payload
	case <-ctx.Done():
		t.Fatal("dock-a's config not seen")
	}
	if err := spy.Publish(ctx, wire.CentralTopic("dock-sim-1", wire.TopicConfig), 1, true, p); err != nil {
		t.Fatal(err)
	}
	var rep wire.ReportedMsg
	if err := WaitFor(ctx, "report on dock-a's config", func() bool {
		var ok bool
		rep, ok = h.Central.Reported("dock-sim-1")
		return ok && rep.Version == 7
	}); err != nil {
		t.Fatal(err)
	}
	if rep.Status != "rejected" || !strings.Contains(rep.Reason, "another dock") {
		t.Errorf("dock-a's config at dock-sim-1: reported %+v", rep)
	}
	if s := h.Agent.Settings(); s.Version == 7 || s.Team == "Team-A" {
		t.Errorf("dock-a's config in force at dock-sim-1: %+v", s)
	}
}

func ledgerCount(h *Harness, kind, detail string) int {
	n := 0
	_ = h.Store.Ledger(1, func(e queue.Entry) error {
		if e.Kind == kind && strings.Contains(e.Detail, detail) {
			n++
		}
		return nil
	})
	return n
}
