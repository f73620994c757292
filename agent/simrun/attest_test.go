package simrun

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// Issue #14 finding 3, the rest: central checks the uploading dock may speak for the
// camera. A client holding the dock's broker identity (a stolen certificate) uploads
// forged footage in the dock's name, attributed to a camera really docked there and to an
// officer it chose. Central files the bytes (it refuses no evidence) and sends its receipt
// to the dock; the dock's agent, which never offloaded that recording, disowns the receipt
// in its ledger, and central, chaining that ledger, raises an alert naming the recording.
// The honest recordings of the same run raise none: each is attested by the dock's ledger
// (offloaded from the camera it was filed under).
func TestForgedUploadInTheDocksNameIsFlagged(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	cam, want, err := h.NewCamera("CAM-H", "OF-H", 2, 60_000, 7, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(0, cam)
	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		t.Fatal(err)
	}
	forger, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: h.BrokerURL, ClientID: "stolen-dock-cert", CleanSession: true,
		Subscriptions: map[string]byte{wire.CentralTopic("dock-sim-1", "#"): 1}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	data := []byte("forged footage, framing an officer")
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	meta := wire.RecordingMeta{ID: "CAM-H_FORGED_0001.mp4", Name: "FORGED_0001.mp4", Device: "CAM-H", Officer: "framed-officer",
		Start: time.Now().UTC().Add(-time.Hour), End: time.Now().UTC().Add(-50 * time.Minute), Class: "evidence"}
	publish := func(leaf string, b []byte) {
		t.Helper()
		if err := forger.Publish(ctx, wire.DockTopic("dock-sim-1", leaf), 1, false, b); err != nil {
			t.Fatal(err)
		}
	}
	begin, _ := json.Marshal(wire.BeginMsg{Transfer: "forged", Recording: meta, Size: int64(len(data)), SHA256: hexSum})
	publish(wire.TopicBegin, begin)
	time.Sleep(300 * time.Millisecond)
	publish(wire.TopicChunk, wire.AppendChunk(nil, wire.Chunk{Recording: meta.ID, Offset: 0, Data: data}))
	time.Sleep(300 * time.Millisecond)
	end, _ := json.Marshal(wire.EndMsg{Transfer: "forged", Recording: meta.ID, Size: int64(len(data)), SHA256: hexSum})
	publish(wire.TopicEnd, end)

	if err := WaitFor(ctx, "the forged recording disowned in the dock's ledger", func() bool {
		return ledgerHas(h, queue.EvRejected, "does not hold")
	}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "central's alert on the disowned recording", func() bool {
		_, ok := h.Central.Alerts()["dock-sim-1/"+central.AlertReceiptRefused+"/"+meta.ID]
		return ok
	}); err != nil {
		t.Fatalf("%v; central's alerts: %v", err, h.Central.Alerts())
	}
	if _, ok, err := h.Central.Store().Filed("dock-sim-1", meta.ID); !ok || err != nil {
		t.Errorf("central did not keep the forged upload as filed bytes: %v", err)
	}
	// The honest recordings: their verified entries were chained, none raised an alert.
	var lastVerified uint64
	if err := WaitFor(ctx, "the honest recordings verified", func() bool {
		n := 0
		_ = h.Store.Ledger(1, func(e queue.Entry) error {
			if e.Kind == queue.EvVerified {
				n, lastVerified = n+1, e.Seq
			}
			return nil
		})
		return n == len(want)
	}); err != nil {
		t.Fatal(err)
	}
	heads := h.Central.Store().(central.LedgerHeads)
	if err := WaitFor(ctx, "central chained the verified entries", func() bool {
		head, ok, err := heads.LedgerHead("dock-sim-1")
		return err == nil && ok && head.Seq >= lastVerified
	}); err != nil {
		t.Fatal(err)
	}
	for key, a := range h.Central.Alerts() {
		if a.Code == central.AlertUnattested {
			t.Errorf("an honest recording raised %s: %+v", key, a)
		}
	}
}
