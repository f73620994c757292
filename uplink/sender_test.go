package uplink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// refusing is central's store refusing one recording, in one way, until it is fixed.
type refusing struct {
	central.Storage
	id, how string

	mu     sync.Mutex
	fixed  bool
	begins int // begins seen for the refused recording
}

func (r *refusing) refuses(id, how string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return id == r.id && how == r.how && !r.fixed
}

func (r *refusing) fix() {
	r.mu.Lock()
	r.fixed = true
	r.mu.Unlock()
}

func (r *refusing) beginsSeen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.begins
}

func (r *refusing) Begin(dock, transfer string, meta wire.RecordingMeta, size int64, sha string) (central.Upload, error) {
	if meta.ID == r.id {
		r.mu.Lock()
		r.begins++
		r.mu.Unlock()
	}
	if r.refuses(meta.ID, "begin") {
		return central.Upload{}, errors.New("storage refuses this recording")
	}
	return r.Storage.Begin(dock, transfer, meta, size, sha)
}

func (r *refusing) Finish(dock, id string, size int64, sha string) (central.Stored, error) {
	switch {
	case r.refuses(id, "end-error"): // answered with an ack carrying an error
		return central.Stored{}, &central.IncompleteError{Held: size, Size: size}
	case r.refuses(id, "end-silent"): // central logs it and answers nothing
		return central.Stored{}, errors.New("disk on fire")
	case r.refuses(id, "end-mismatch"): // answered with a receipt carrying an error
		return central.Stored{}, &central.MismatchError{Size: size, SHA256: strings.Repeat("00", 32)}
	}
	return r.Storage.Finish(dock, id, size, sha)
}

// calls records the sender's stuck and unstuck reports.
type calls struct {
	mu      sync.Mutex
	stuck   []string // "id attempts err"
	unstuck []string
}

func (c *calls) onStuck(id string, attempts int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stuck = append(c.stuck, fmt.Sprintf("%s %d %v", id, attempts, err))
}

func (c *calls) onUnstuck(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unstuck = append(c.unstuck, id)
}

func (c *calls) get() (stuck, unstuck []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.stuck...), append([]string(nil), c.unstuck...)
}

// One recording that central keeps refusing, first in the queue's order, holds none of the
// others back: they are all verified within a bound while it backs off alone. After
// StuckAfter failures in a row it is reported stuck once, with its id and last error; it is
// still retried, without spinning, stays in the spool, and once central takes it the
// sender reports it unstuck.
func TestFailingRecordingBacksOffAlone(t *testing.T) {
	const (
		size       = 300 << 10
		good       = 5
		stuckAfter = 3
		retryMax   = 800 * time.Millisecond
	)
	for _, how := range []string{"begin", "end-error", "end-silent", "end-mismatch"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			b := mqtttest.Start(t, "")
			store := openStore(t)
			day := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
			bad := spool(t, store, "CAM-1_000-bad.mp4", day, size) // oldest: first in order
			var others []string
			for i := range good {
				others = append(others, spool(t, store, fmt.Sprintf("CAM-1_%03d.mp4", i+1), day.Add(time.Duration(i+1)*time.Minute), size).ID)
			}
			if p, _ := store.Pending(1); len(p) != 1 || p[0].ID != bad.ID {
				t.Fatalf("the refused recording is not first in the queue's order: %v", p)
			}
			ref := &refusing{Storage: central.FileStore{Dir: t.TempDir()}, id: bad.ID, how: how}
			rcv := startCentral(t, ctx, b, ref, central.Options{ChunkSize: 64 << 10, Window: 4})

			s := NewSender(dialDock(t, ctx, b), store, testLog())
			s.StallTimeout, s.ReceiptTimeout = 2*time.Second, time.Second
			s.RetryMin, s.RetryMax, s.StuckAfter = 100*time.Millisecond, retryMax, stuckAfter
			var c calls
			s.OnStuck, s.OnUnstuck = c.onStuck, c.onUnstuck
			start := time.Now()
			runSender(t, ctx, s)

			bound, bcancel := context.WithTimeout(ctx, 15*time.Second)
			defer bcancel()
			waitFor(t, bound, "every other recording verified", func() bool {
				for _, id := range others {
					if !settled(state(store, id)) {
						return false
					}
				}
				return true
			})
			t.Logf("%d recordings behind the refused one verified in %v", good, time.Since(start).Round(time.Millisecond))
			for _, id := range others {
				if _, ok, err := rcv.Store().Lookup(id); !ok || err != nil {
					t.Errorf("%s not verified at central (%v)", id, err)
				}
			}

			waitFor(t, bound, "the refused recording reported stuck", func() bool { st, _ := c.get(); return len(st) > 0 })
			// It keeps failing and is retried (how often, on the sender's clock:
			// TestSenderBacksOffOnItsClock), and is not reported again.
			before := ref.beginsSeen()
			waitFor(t, bound, "the refused recording retried", func() bool { return ref.beginsSeen() > before })
			stuck, unstuck := c.get()
			if len(stuck) != 1 || !strings.HasPrefix(stuck[0], fmt.Sprintf("%s %d ", bad.ID, stuckAfter)) || strings.HasSuffix(stuck[0], "<nil>") {
				t.Errorf("stuck reports %q, want one for %s after %d attempts with its error", stuck, bad.ID, stuckAfter)
			}
			if len(unstuck) != 0 {
				t.Errorf("unstuck reports %q while central still refuses", unstuck)
			}
			if st := state(store, bad.ID); st != queue.Spooled && st != queue.Uploading {
				t.Fatalf("refused recording is %q, want it still in the spool", st)
			}
			if f, err := store.Open(bad.ID); err != nil {
				t.Fatalf("refused recording's spool copy: %v", err)
			} else {
				f.Close()
			}

			ref.fix()
			waitFor(t, ctx, "the refused recording verified once central takes it", func() bool { return settled(state(store, bad.ID)) })
			waitFor(t, ctx, "unstuck reported", func() bool { _, u := c.get(); return len(u) > 0 })
			if stuck, unstuck := c.get(); len(stuck) != 1 || len(unstuck) != 1 || unstuck[0] != bad.ID {
				t.Errorf("after central took it: stuck %q, unstuck %q, want one each for %s", stuck, unstuck, bad.ID)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	const min, max = time.Second, 30 * time.Second
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{5, 16 * time.Second},
		{6, 30 * time.Second},
		{7, 30 * time.Second},
		{1000, 30 * time.Second}, // no overflow
	} {
		if got := retryDelay(min, max, tc.failures); got != tc.want {
			t.Errorf("retryDelay after %d failures = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

// The broker going away under a transfer is no failure of the recording being sent: with
// StuckAfter 1 it is not reported stuck, and it is verified once the broker is back.
func TestBrokerOutageIsNoFailureOfTheRecording(t *testing.T) {
	const size = 4 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := mqtttest.Start(t, "")
	store := openStore(t)
	rec := spool(t, store, "CAM-1_outage.mp4", time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), size)
	rcv := startCentral(t, ctx, b, nil, central.Options{ChunkSize: 64 << 10, Window: 4, RateBytes: 1 << 20})
	s := NewSender(dialDock(t, ctx, b), store, testLog())
	s.RetryMin, s.RetryMax, s.StuckAfter = 100*time.Millisecond, time.Second, 1
	var c calls
	s.OnStuck = c.onStuck
	runSender(t, ctx, s)
	for range 2 {
		held := rcv.Progress(dockName, rec.ID)
		waitFor(t, ctx, "transfer under way", func() bool { return rcv.Progress(dockName, rec.ID) > held })
		b.Stop()
		time.Sleep(500 * time.Millisecond)
		b.Up()
	}
	waitFor(t, ctx, "recording verified after the outages", func() bool { return settled(state(store, rec.ID)) })
	if stuck, _ := c.get(); len(stuck) != 0 {
		t.Errorf("broker outages reported as the recording's failures: %q", stuck)
	}
}
