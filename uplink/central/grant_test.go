package central

import (
	"context"
	"testing"
	"time"

	"dock/uplink/broker"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// A dock that asks for a grant again within the two seconds after the last one (its
// backlog right after its online status, both ends just restarted, the first grant maybe
// lost before the dock subscribed) gets another once the two seconds are over, instead of
// waiting for its next announcement (15 s).
func TestGrantAskedTooSoonIsDeferredNotDropped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := broker.Start("127.0.0.1:0", quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rcv, err := Start(ctx, Options{Broker: b.URL(), ClientID: "central-grants", Store: FileStore{Dir: t.TempDir()}}, quiet())
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
	s := &dockSession{t: t, r: &rig{ctx: ctx}, name: "dock-G", conn: dock}
	s.send(wire.TopicStatus, wire.StatusMsg{State: "online"})
	time.Sleep(200 * time.Millisecond)
	s.send(wire.TopicBacklog, wire.BacklogMsg{Count: 3, Bytes: 300, Time: time.Now()})
	grants := 0
	deadline := time.After(4 * time.Second)
	for grants < 2 {
		select {
		case m := <-dock.Inbox():
			if _, leaf, _ := wire.SplitTopic(wire.CentralRoot, m.Topic); leaf == wire.TopicGrant {
				grants++
			}
		case <-deadline:
			t.Fatalf("%d grant(s) within 4 s of two asks 200 ms apart, want the second deferred, not dropped", grants)
		}
	}
}
