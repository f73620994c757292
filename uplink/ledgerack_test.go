package uplink

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// Central's acknowledgement of the ledger head reaches the agent only sealed by central
// for this dock, like every other central message: a forged one would let whoever can
// publish on the broker set the dock's anchor.
func TestLedgerAckOnlySealed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := mqtttest.Start(t, "")
	u := dialDock(t, ctx, b)
	office := officeConn(t, ctx, b)
	pub := func(m any) {
		t.Helper()
		p, _ := json.Marshal(m)
		if err := office.Publish(ctx, wire.CentralTopic(dockName, wire.TopicLedgerAck), 1, false, p); err != nil {
			t.Fatal(err)
		}
	}
	sha := strings.Repeat("ab", 32)
	pub(&wire.LedgerAckMsg{HeadSeq: 7, HeadHash: sha})
	select {
	case rj := <-u.Rejects():
		if !strings.Contains(rj.Err.Error(), "unsigned") {
			t.Fatalf("unsigned ledger-ack rejected as %v, want unsigned", rj.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("unsigned ledger-ack not rejected")
	}
	pub(sealed(&wire.LedgerAckMsg{HeadSeq: 8, HeadHash: sha}, 3))
	select {
	case a := <-u.LedgerAcks():
		if a.HeadSeq != 8 || a.HeadHash != sha {
			t.Fatalf("ledger-ack %+v", a)
		}
	case rj := <-u.Rejects():
		t.Fatalf("sealed ledger-ack rejected: %v", rj.Err)
	case <-time.After(5 * time.Second):
		t.Fatal("sealed ledger-ack not delivered")
	}
}
