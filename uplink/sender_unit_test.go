package uplink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/clock"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// fakeTransport is the broker as the session sees it: what the dock publishes goes to
// central (a function of the test's), and what central says comes back on the inbox.
type fakeTransport struct {
	inbox   chan mqttconn.Message
	up      atomic.Bool
	central func(topic string, payload []byte)
}

func (f *fakeTransport) Inbox() <-chan mqttconn.Message { return f.inbox }
func (f *fakeTransport) Connected() bool                { return f.up.Load() }
func (f *fakeTransport) Close()                         { f.up.Store(false) }

func (f *fakeTransport) Publish(_ context.Context, topic string, _ byte, _ bool, payload []byte) error {
	if !f.up.Load() {
		return fmt.Errorf("publish %s: %w", topic, mqttconn.ErrOffline)
	}
	f.central(topic, payload)
	return nil
}

func (f *fakeTransport) PublishAsync(topic string, _ byte, payload []byte) (<-chan struct{}, error) {
	done := make(chan struct{})
	close(done)
	return done, f.Publish(context.Background(), topic, 1, false, payload)
}

// fakeCentral answers a dock's transfers as central does, or stays silent on chunks.
type fakeCentral struct {
	t       *testing.T
	tr      *fakeTransport
	silent  bool // acknowledges the begin, never a chunk
	mu      sync.Mutex
	seq     uint64
	got     map[string][]byte // recording -> bytes received in order
	begins  atomic.Int32
	forgery bool            // the receipt names another hash
	refuse  map[string]bool // recordings whose begin is answered with an error
}

func (c *fakeCentral) say(leaf string, m wire.Sealed) {
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	c.tr.inbox <- centralSays(leaf, m, seq)
}

func (c *fakeCentral) hear(topic string, payload []byte) {
	_, leaf, ok := wire.SplitTopic(wire.DockRoot, topic)
	if !ok {
		c.t.Errorf("dock published on %s", topic)
		return
	}
	switch leaf {
	case wire.TopicBegin:
		var b wire.BeginMsg
		if err := json.Unmarshal(payload, &b); err != nil {
			c.t.Errorf("begin: %v", err)
			return
		}
		c.begins.Add(1)
		if c.refuse[b.Recording.ID] {
			c.say(wire.TopicAck, &wire.AckMsg{Transfer: b.Transfer, Recording: b.Recording.ID, Error: "refused by the test's central"})
			return
		}
		c.mu.Lock()
		off := int64(len(c.got[b.Recording.ID]))
		c.mu.Unlock()
		c.say(wire.TopicAck, &wire.AckMsg{Transfer: b.Transfer, Recording: b.Recording.ID, Offset: off})
	case wire.TopicChunk:
		if c.silent {
			return
		}
		ch, err := wire.ParseChunk(payload)
		if err != nil {
			c.t.Errorf("chunk: %v", err)
			return
		}
		c.mu.Lock()
		if int64(len(c.got[ch.Recording])) == ch.Offset {
			c.got[ch.Recording] = append(c.got[ch.Recording], ch.Data...)
		}
		off := int64(len(c.got[ch.Recording]))
		c.mu.Unlock()
		c.say(wire.TopicAck, &wire.AckMsg{Recording: ch.Recording, Offset: off})
	case wire.TopicEnd:
		var e wire.EndMsg
		if err := json.Unmarshal(payload, &e); err != nil {
			c.t.Errorf("end: %v", err)
			return
		}
		c.mu.Lock()
		sum := sha256.Sum256(c.got[e.Recording])
		size := int64(len(c.got[e.Recording]))
		c.mu.Unlock()
		sha := hex.EncodeToString(sum[:])
		if c.forgery {
			sha = "00" + sha[2:]
		}
		c.say(wire.TopicReceipt, &wire.ReceiptMsg{Recording: e.Recording, Size: size, SHA256: sha, Stored: time.Now().UTC()})
	}
}

// senderRig is a sender over the fake transport, a real queue and a fake clock.
type senderRig struct {
	clk     *clock.Fake
	u       *Uplink
	s       *Sender
	store   *queue.Store
	central *fakeCentral
	stuck   chan error
}

func newSenderRig(t *testing.T, silent bool) *senderRig {
	t.Helper()
	tr := &fakeTransport{inbox: make(chan mqttconn.Message, 4096)}
	c := &fakeCentral{t: t, tr: tr, silent: silent, got: map[string][]byte{}}
	tr.central = c.hear // in publish order, as the broker delivers one client's messages
	tr.up.Store(true)
	u := newUplink(Options{Dock: dockName, CentralKey: centralPub}, testLog())
	u.start(tr)
	u.connected()
	t.Cleanup(u.Close)
	r := &senderRig{clk: clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)), u: u, store: openStore(t), central: c, stuck: make(chan error, 16)}
	r.s = NewSender(u, r.store, testLog())
	r.s.Clock, r.s.StuckAfter = r.clk, 1
	r.s.OnStuck = func(_ string, _ int, err error) { r.stuck <- err }
	return r
}

// run runs the sender until the test ends, and grants it.
func (r *senderRig) run(t *testing.T, g wire.GrantMsg) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	r.central.say(wire.TopicGrant, &g)
}

// A recording central acknowledges to the last byte, and whose receipt matches, is
// verified (and freed, nothing holding it); one whose receipt names another hash stays
// spooled: nothing is freed.
func TestSenderUploadsAndSettles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forgery bool
		want    func(queue.State) bool
	}{
		{"receipt matches", false, settled},
		{"receipt names another hash", true, func(st queue.State) bool { return st == queue.Spooled }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSenderRig(t, false)
			r.central.forgery = tc.forgery
			rec := spool(t, r.store, "rec-1", time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC), 300_000)
			r.run(t, wire.GrantMsg{ID: "g1", ChunkSize: 64 << 10, Window: 4})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			waitFor(t, ctx, "central holds every byte", func() bool {
				r.central.mu.Lock()
				defer r.central.mu.Unlock()
				return int64(len(r.central.got[rec.ID])) == rec.Size
			})
			if tc.forgery {
				select {
				case err := <-r.stuck:
					t.Logf("refused: %v", err)
				case <-ctx.Done():
					t.Fatal("a receipt with another hash was not refused")
				}
			} else {
				waitFor(t, ctx, "recording verified", func() bool { return tc.want(state(r.store, rec.ID)) })
			}
			if st := state(r.store, rec.ID); !tc.want(st) {
				t.Errorf("recording is %s after central's receipt", st)
			}
		})
	}
}

// Central that stops acknowledging fails the transfer after StallTimeout of the sender's
// clock, not before, and the recording backs off alone: no wall-clock wait in the test.
func TestSenderStallIsTimedByItsClock(t *testing.T) {
	r := newSenderRig(t, true)
	r.s.StallTimeout = 20 * time.Second
	rec := spool(t, r.store, "rec-1", time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC), 300_000)
	r.run(t, wire.GrantMsg{ID: "g1", ChunkSize: 64 << 10, Window: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, ctx, "the transfer under way", func() bool { return r.central.begins.Load() == 1 && state(r.store, rec.ID) == queue.Uploading })
	began := r.clk.Now()
	for {
		// The sender waits on its clock (its ticker and the ack timeout).
		if err := r.clk.WaitFor(ctx, 2); err != nil {
			t.Fatalf("the sender armed no timeout: %v", err)
		}
		select {
		case err := <-r.stuck:
			if !errors.Is(err, ErrStalled) {
				t.Fatalf("failed with %v, want %v", err, ErrStalled)
			}
			if took := r.clk.Since(began); took < r.s.StallTimeout {
				t.Fatalf("stalled after %v of silence, before the %v stall timeout", took, r.s.StallTimeout)
			}
			waitFor(t, ctx, "lease released", func() bool { return state(r.store, rec.ID) == queue.Spooled })
			return
		default:
		}
		if r.clk.Since(began) > 2*r.s.StallTimeout {
			t.Fatalf("no stall after %v of central's silence (stall timeout %v)", r.clk.Since(began), r.s.StallTimeout)
		}
		r.clk.Advance(time.Second)
		if ctx.Err() != nil {
			t.Fatal("timed out")
		}
	}
}

// A recording central keeps refusing is retried on the sender's clock with its backoff
// (doubling from RetryMin, capped at RetryMax): never while the clock stands still, and
// a bounded number of times as it moves.
func TestSenderBacksOffOnItsClock(t *testing.T) {
	const retryMax = 800 * time.Millisecond
	r := newSenderRig(t, false)
	r.s.RetryMin, r.s.RetryMax = 100*time.Millisecond, retryMax
	rec := spool(t, r.store, "rec-1", time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC), 100_000)
	r.central.refuse = map[string]bool{rec.ID: true}
	r.run(t, wire.GrantMsg{ID: "g1", ChunkSize: 64 << 10, Window: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case err := <-r.stuck:
		t.Logf("first failure: %v", err)
	case <-ctx.Done():
		t.Fatal("a refused begin was not a failure of the recording")
	}
	// The sender waits on its ticker and the backoff's timer.
	if err := r.clk.WaitFor(ctx, 2); err != nil {
		t.Fatalf("the sender armed no backoff: %v", err)
	}
	before := r.central.begins.Load()
	time.Sleep(100 * time.Millisecond) // a spinning sender would begin again meanwhile; the clock stands still
	if n := r.central.begins.Load() - before; n != 0 {
		t.Fatalf("begun %d more times while the sender's clock stood still: it spins", n)
	}
	for elapsed := time.Duration(0); elapsed < 3*retryMax; elapsed += 50 * time.Millisecond {
		if err := r.clk.WaitFor(ctx, 2); err != nil {
			t.Fatalf("the sender stopped waiting on its clock: %v", err)
		}
		r.clk.Advance(50 * time.Millisecond)
	}
	if n := r.central.begins.Load() - before; n < 1 || n > 4 {
		t.Errorf("refused recording begun %d times in %v of the sender's clock with backoff capped at %v: want 1 to 4", n, 3*retryMax, retryMax)
	}
	if st := state(r.store, rec.ID); st != queue.Spooled && st != queue.Uploading {
		t.Errorf("refused recording is %s, want it still in the spool", st)
	}
}
