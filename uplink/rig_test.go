package uplink

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// The tests here run the real parts: mosquitto, a Badger queue in a temporary directory,
// the dock's Uplink and Sender, and central's reference receiver over a file store.

const dockName = "d1"

// centralPub and centralKey are central's signing key pair in these tests.
var centralPub, centralKey, _ = ed25519.GenerateKey(nil)

// sealed is m sealed for dockName with central's key and Seq seq.
func sealed(m wire.Sealed, seq uint64) wire.Sealed {
	wire.SealFor(m, dockName, seq, centralKey)
	return m
}

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openStore opens a queue in a temporary directory, closed when the test ends.
func openStore(t *testing.T) *queue.Store {
	t.Helper()
	s, err := queue.Open(t.TempDir(), testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// spool writes size random bytes as recording id, started at start, and commits it.
func spool(t *testing.T, s *queue.Store, id string, start time.Time, size int) queue.Recording {
	t.Helper()
	data := make([]byte, size)
	var seed [32]byte
	copy(seed[:], id)
	rand.NewChaCha8(seed).Read(data)
	rec := queue.Recording{ID: id, Name: id, Device: "CAM-1", Officer: "OF-1", Start: start, End: start.Add(time.Minute), Size: int64(size)}
	rec, err := s.Spool().Write(context.Background(), rec, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rec, err = s.Commit(rec, queue.Event{Kind: queue.EvOffloaded, Recording: id})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// startCentral starts central's receiver on broker over store (a file store in a
// temporary directory when nil).
func startCentral(t *testing.T, ctx context.Context, b *mqtttest.Broker, store central.Storage, o central.Options) *central.Receiver {
	t.Helper()
	if store == nil {
		store = central.FileStore{Dir: filepath.Join(t.TempDir(), "central")}
	}
	o.Broker, o.ClientID, o.Store = b.URL, "office", store
	if o.SigningKey == nil {
		o.SigningKey = centralKey
	}
	r, err := central.Start(ctx, o, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// dialDock starts the dock's session and waits until it is subscribed.
func dialDock(t *testing.T, ctx context.Context, b *mqtttest.Broker) *Uplink {
	t.Helper()
	u, err := Dial(ctx, Options{Broker: b.URL, Dock: dockName, Version: "test", CentralKey: centralPub}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	waitFor(t, ctx, "dock connected", u.Connected)
	return u
}

// runSender runs s until the test ends.
func runSender(t *testing.T, ctx context.Context, s *Sender) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds, or fails the test when ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// state returns a recording's state in the dock's queue.
func state(s *queue.Store, id string) queue.State {
	r, err := s.Get(id)
	if err != nil {
		return ""
	}
	return r.State
}

func settled(st queue.State) bool { return st == queue.Verified || st == queue.Freed }
