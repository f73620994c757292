package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"log/slog"
	"testing"
	"time"

	"dock/health"
	"dock/queue"
	"dock/uplink/wire"
)

// commitGate holds each document write until the test lets it go, as a disk that takes
// its time over a synced commit would.
type commitGate struct {
	put     func(kind, id string, v any, events ...queue.Event) error
	entered chan string   // the kind of each write that reached the gate
	release chan struct{} // one receive lets one write go
}

func (g *commitGate) PutDoc(kind, id string, v any, events ...queue.Event) error {
	g.entered <- kind
	<-g.release
	return g.put(kind, id, v, events...)
}

// Settings and the faults answer while a change of them waits on its synced commit, and
// still show what was in force before it: a change is published once it is durable, and
// no reader waits for the disk (the agent used to hold the lock Settings takes across
// the commit, so a slow fsync stalled every bay, the uplink and the control socket).
func TestReadersDoNotWaitOnACommit(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := queue.Open(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Now().UTC() }
	cfg := Config{Dock: "dock-1", Team: "team-a", CentralKey: base64.StdEncoding.EncodeToString(pub)}
	gate := &commitGate{put: store.PutDoc, entered: make(chan string), release: make(chan struct{})}
	a := &Agent{cfg: cfg, store: store, log: log, now: now, record: store.Record}
	a.config = &configIntake{cfg: cfg, putDoc: gate.PutDoc, note: a.note, log: log, now: now}
	if err := a.config.load(store); err != nil {
		t.Fatal(err)
	}
	if a.faults, err = newFaultRegistry(store, log, now); err != nil {
		t.Fatal(err)
	}
	a.faults.putDoc = gate.PutDoc
	faultID := health.FaultID("CAM-1", health.OverTemp)

	type seen struct {
		version int64
		faults  int
		open    int
	}
	cases := []struct {
		name   string
		change func()
		before seen
		after  seen
	}{
		{"config applied", func() {
			m := wire.ConfigMsg{Version: 2, Team: "team-b", Expires: now().Add(time.Hour)}
			wire.SealFor(&m, "dock-1", 1, priv)
			a.config.apply(context.Background(), m)
		}, seen{0, 0, 0}, seen{2, 0, 0}},
		{"fault raised", func() {
			a.raise(0, "CAM-1", health.Verdict{Code: health.OverTemp, Detail: "61 C", OutOfService: true})
		}, seen{2, 0, 0}, seen{2, 1, 1}},
		{"fault acknowledged", func() {
			if err := a.faultEvent(faultID, health.EvAck, "maintenance"); err != nil {
				t.Error(err)
			}
		}, seen{2, 1, 1}, seen{2, 1, 1}},
		{"fault cleared", func() {
			if err := a.faultEvent(faultID, health.EvClear, "maintenance"); err != nil {
				t.Error(err)
			}
		}, seen{2, 1, 1}, seen{2, 1, 0}},
	}
	look := func() seen {
		return seen{a.Settings().Version, len(a.Faults()), len(a.openFaults("CAM-1"))}
	}
	for _, c := range cases {
		done := make(chan struct{})
		go func() { defer close(done); c.change() }()
		select {
		case <-gate.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no commit reached the store", c.name)
		}
		answered := make(chan seen, 1)
		go func() { answered <- look() }()
		select {
		case got := <-answered:
			if got != c.before {
				t.Errorf("%s: while its commit is held, readers see %+v, want what was in force before, %+v", c.name, got, c.before)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Settings, Faults and openFaults wait on a held commit", c.name)
		}
		gate.release <- struct{}{}
		<-done
		if got := look(); got != c.after {
			t.Errorf("%s: once committed, readers see %+v, want %+v", c.name, got, c.after)
		}
	}
}
