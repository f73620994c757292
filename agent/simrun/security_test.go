package simrun

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/brokertls"
	"dock/uplink/central"
	"dock/uplink/mqttconn"
	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// Against mosquitto with TLS client certificates and the shipped ACL (build/mosquitto/acl):
// a dock reads only its own config and publishes only as itself.
func TestBrokerACLConfinesEachDock(t *testing.T) {
	dir := t.TempDir()
	pki := mqtttest.NewPKI(t, dir)
	acl, _ := filepath.Abs("../../build/mosquitto/acl")
	mq := mqtttest.StartTLS(t, pki, acl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tlsFor := func(cn string) *tls.Config {
		cert, key := pki.Issue(cn, false)
		c, err := brokertls.Config(pki.CAFile, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rcv, err := central.Start(ctx, central.Options{Broker: mq.URL, ClientID: "central", TLS: tlsFor("central"), Store: central.FileStore{Dir: filepath.Join(dir, "central")}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	for _, d := range []string{"dock-a", "dock-b"} {
		if err := rcv.PushConfig(ctx, d, wire.ConfigMsg{Version: 1, Team: "team-of-" + d}); err != nil {
			t.Fatal(err)
		}
	}
	dial := func(cn string, subs ...string) *mqttconn.Conn {
		m := map[string]byte{}
		for _, s := range subs {
			m[s] = 1
		}
		c, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: mq.URL, ClientID: cn, TLS: tlsFor(cn), Subscriptions: m, CleanSession: true}, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	a := dial("dock-a", "central/v1/dock-a/#", "central/v1/dock-b/#")
	b := dial("dock-b", "central/v1/dock-b/#")

	got := collect(a, 2*time.Second)
	if !got["central/v1/dock-a/config"] {
		t.Fatal("dock-a did not receive its own config: the test proves nothing")
	}
	if got["central/v1/dock-b/config"] {
		t.Error("dock-a read dock-b's config")
	}
	collect(b, 500*time.Millisecond) // drain b's own retained config

	// dock-a forges a receipt and a grant for dock-b, and an alert in dock-b's name.
	forged, _ := json.Marshal(wire.ReceiptMsg{Recording: "CAM-B_x.mp4", Size: 1, SHA256: strings.Repeat("0", 64)})
	for _, topic := range []string{"central/v1/dock-b/receipt", "central/v1/dock-b/grant"} {
		_ = a.Publish(ctx, topic, 1, false, forged)
	}
	alert, _ := json.Marshal(wire.AlertMsg{ID: "CAM-X/battery-worn", Device: "CAM-X", Code: "battery-worn"})
	_ = a.Publish(ctx, "dock/v1/dock-b/alert", 1, false, alert)
	_ = a.Publish(ctx, "dock/v1/dock-a/alert", 1, false, alert) // its own: allowed, the control
	if got := collect(b, 2*time.Second); len(got) != 0 {
		t.Errorf("dock-b received what dock-a published for it: %v", got)
	}
	alerts := rcv.Alerts()
	if _, ok := alerts["dock-a/CAM-X/battery-worn"]; !ok {
		t.Error("central did not get dock-a's own alert: the test proves nothing")
	}
	if _, ok := alerts["dock-b/CAM-X/battery-worn"]; ok {
		t.Error("central took an alert dock-a published as dock-b")
	}

	// No certificate, no connection.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	noCert, _ := brokertls.Config(pki.CAFile, "", "")
	if c, err := mqttconn.Dial(short, mqttconn.Options{Broker: mq.URL, ClientID: "intruder", TLS: noCert}, quietLog()); err == nil {
		c.Close()
		t.Error("a client without a certificate connected")
	}
}

// A receipt whose hash differs from the dock's frees nothing, is written to the ledger and
// raises an integrity fault.
func TestForgedReceiptFreesNothing(t *testing.T) {
	ctx, h := startHarness(t, 30*time.Second, Options{Dir: t.TempDir(), Slots: 1, NoCentral: true, Log: testLog(t)})
	cam, want, err := h.NewCamera("CAM-R", "OF-R", 1, 50_000, 3, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(0, cam)
	var id string
	for k := range want {
		id = k
	}
	if err := WaitFor(ctx, "spooled", func() bool { r, err := h.Store.Get(id); return err == nil && r.State == queue.Spooled }); err != nil {
		t.Fatal(err)
	}
	r, _ := h.Store.Get(id)
	attacker, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: h.BrokerURL, ClientID: "attacker", CleanSession: true}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	forged, _ := json.Marshal(wire.ReceiptMsg{Recording: id, Size: r.Size, SHA256: strings.Repeat("ab", 32)})
	if err := attacker.Publish(ctx, wire.CentralTopic("dock-sim-1", wire.TopicReceipt), 1, false, forged); err != nil {
		t.Fatal(err)
	}
	// Unsigned, it reaches nothing that could act on it (DESIGN.md, invariant 8).
	if err := WaitFor(ctx, "forged receipt rejected", func() bool { return ledgerHas(h, queue.EvInput, "receipt rejected") }); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.Store.Get(id); got.State != queue.Spooled {
		t.Errorf("after a forged receipt the recording is %s", got.State)
	}
	if _, err := os.Stat(filepath.Join(h.Store.Spool().Dir(), id+".rec")); err != nil {
		t.Error("the spool copy is gone after a forged receipt")
	}
	if !ledgerHas(h, queue.EvInput, "receipt rejected: signature invalid") {
		t.Error("no ledger entry for the rejected receipt")
	}
}

func collect(c *mqttconn.Conn, d time.Duration) map[string]bool {
	got := map[string]bool{}
	deadline := time.After(d)
	for {
		select {
		case m := <-c.Inbox():
			got[m.Topic] = true
		case <-deadline:
			return got
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
