package simrun

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/wire"
)

// A hold placed at central (the console's Evidence page, article 13) reaches the dock as
// the signed place-hold command: the dock keeps its copy after central's receipt, until
// central releases the hold; both orders are in the dock's ledger with who gave them.
func TestHoldPlacedAtCentralKeepsTheDocksCopy(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: dir, Slots: 1, NoCentral: true, CentralKey: key, Log: testLog(t)})
	// Central grants by hand here, so the hold is placed before the upload.
	c, err := central.Start(ctx, central.Options{Broker: h.BrokerURL, ClientID: "central-manual", ManualGrants: true,
		Store: central.FileStore{Dir: filepath.Join(dir, "central")}, SigningKey: key}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cam, want, err := h.NewCamera("CAM-HOLD", "OF-HOLD", 1, 80_000, 11, nil, nil)
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
	if err := c.Command(ctx, "dock-sim-1", wire.CommandMsg{Kind: "place-hold", Recording: id, Reason: "dispute", By: "sup-1"}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "the hold in the dock's record and ledger", func() bool {
		r, err := h.Store.Get(id)
		return err == nil && r.Hold == "dispute" && ledgerHas(h, queue.EvHold, `placed by central, ordered by "sup-1"`)
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Grant(ctx, "dock-sim-1", wire.GrantMsg{ID: "g1", ChunkSize: wire.MinChunk, Window: 8}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "verified by central", func() bool {
		r, err := h.Store.Get(id)
		return err == nil && r.State != queue.Spooled && r.State != queue.Uploading
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // anything the receipt set off has happened
	if r, _ := h.Store.Get(id); r.State != queue.Verified {
		t.Fatalf("after central's receipt the held recording is %s, want %s (kept)", r.State, queue.Verified)
	}
	if _, err := os.Stat(filepath.Join(h.Store.Spool().Dir(), id+".rec")); err != nil {
		t.Fatal("the held copy is gone:", err)
	}
	if err := c.Command(ctx, "dock-sim-1", wire.CommandMsg{Kind: "release-hold", Recording: id, By: "sup-2"}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "released and freed", func() bool {
		r, err := h.Store.Get(id)
		return err == nil && r.State == queue.Freed && ledgerHas(h, queue.EvHold, `ordered by "sup-2"`)
	}); err != nil {
		t.Fatal(err)
	}
}
