package uplink

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// centralSays is a message from central, sealed for the test's dock, as the broker
// delivers it.
func centralSays(leaf string, m wire.Sealed, seq uint64) mqttconn.Message {
	b, _ := json.Marshal(sealed(m, seq))
	return mqttconn.Message{Topic: wire.CentralTopic(dockName, leaf), Payload: b}
}

// Central's acks and receipts are never dropped while the sender is not reading (between
// transfers, or busy settling one): whatever piles up, the last offset central
// acknowledged for each transfer, and every receipt, reach the sender.
func TestNoAckOrReceiptIsDropped(t *testing.T) {
	u := newUplink(Options{Dock: dockName, CentralKey: centralPub}, testLog())
	defer u.closing.Do(func() { close(u.done) })
	var rt router
	const chunks, receipts = 5000, 600
	seq := uint64(0)
	for i := 1; i <= chunks; i++ {
		for _, rec := range []string{"rec-a", "rec-b"} {
			seq++
			u.handle(&rt, centralSays(wire.TopicAck, &wire.AckMsg{Transfer: "t-" + rec, Recording: rec, Offset: int64(i) << 20}, seq))
		}
	}
	for i := range receipts {
		seq++
		u.handle(&rt, centralSays(wire.TopicReceipt, &wire.ReceiptMsg{Recording: fmt.Sprintf("rec-%03d", i), Size: 1, SHA256: "00"}, seq))
	}
	last, delivered := map[string]int64{}, 0
	for len(last) < 2 || last["rec-a"] < chunks<<20 || last["rec-b"] < chunks<<20 {
		select {
		case a := <-u.acks:
			if a.Offset < last[a.Recording] {
				t.Fatalf("%s: ack of offset %d after %d", a.Recording, a.Offset, last[a.Recording])
			}
			last[a.Recording] = a.Offset
			delivered++
		case <-time.After(2 * time.Second):
			t.Fatalf("central's last acks never reached the sender: last offsets %v, want %d each", last, int64(chunks)<<20)
		}
	}
	// Merged, not queued one by one: past the full channel, one per transfer waits (and
	// one more in the mailbox's hand).
	if delivered > cap(u.acks)+2+1 {
		t.Errorf("%d acks delivered for 2 transfers: the mailbox queued them unmerged", delivered)
	}
	for i := range receipts {
		select {
		case r := <-u.receipts:
			if want := fmt.Sprintf("rec-%03d", i); r.Recording != want {
				t.Fatalf("receipt %d is for %s, want %s", i, r.Recording, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%d of %d receipts reached the sender", i, receipts)
		}
	}
}
