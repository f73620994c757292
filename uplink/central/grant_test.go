package central

import (
	"context"
	"testing"
	"time"

	"dock/uplink/broker"
	"dock/uplink/clock"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// A dock that asks for a grant again within the two seconds after the last one (its
// backlog right after its online status, both ends just restarted, the first grant maybe
// lost before the dock subscribed) gets another once the two seconds are over, instead of
// waiting for its next announcement (15 s), and not before: central's clock is a fake the
// test advances.
func TestGrantAskedTooSoonIsDeferredNotDropped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := broker.Start("127.0.0.1:0", quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clk := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	rcv, err := Start(ctx, Options{Broker: b.URL(), ClientID: "central-grants", Store: FileStore{Dir: t.TempDir()}, Clock: clk}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	dock, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: b.URL(), ClientID: "dock-G", CleanSession: true,
		Subscriptions: map[string]byte{wire.CentralRoot + "/dock-G/#": 1}}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer dock.Close()
	grant := func(within time.Duration) bool {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m := <-dock.Inbox():
				if _, leaf, _ := wire.SplitTopic(wire.CentralRoot, m.Topic); leaf == wire.TopicGrant {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	armed := clk.Waiting() // the idle-upload sweep's ticker
	s := &dockSession{t: t, r: &rig{ctx: ctx}, name: "dock-G", conn: dock}
	s.send(wire.TopicStatus, wire.StatusMsg{State: "online"})
	if !grant(4 * time.Second) {
		t.Fatal("no grant for a dock coming online")
	}
	s.send(wire.TopicBacklog, wire.BacklogMsg{Count: 3, Bytes: 300, Time: clk.Now()})
	// The second ask is deferred: central arms a timer for the rest of the interval.
	wctx, wcancel := context.WithTimeout(ctx, 4*time.Second)
	defer wcancel()
	if err := clk.WaitFor(wctx, armed+1); err != nil {
		t.Fatalf("the ask 0 s after a grant armed no deferred grant: %v", err)
	}
	clk.Advance(grantEvery - time.Millisecond)
	if grant(300 * time.Millisecond) {
		t.Fatalf("a second grant before the %v interval was over", grantEvery)
	}
	clk.Advance(time.Millisecond)
	if !grant(4 * time.Second) {
		t.Fatalf("no grant once the %v interval after a too-soon ask was over: it was dropped", grantEvery)
	}
}
