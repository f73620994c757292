package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"dock/queue"
	"dock/uplink/clock"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// Source is the queue as the sender needs it; *queue.Store implements it.
type Source interface {
	Pending(n int) ([]queue.Recording, error)
	Get(id string) (queue.Recording, error)
	Lease(id, transfer string) (queue.Recording, error)
	Release(id, why string) (queue.Recording, error)
	Progress(id string, acked int64) error
	Verify(id, sha string, size int64) (queue.Recording, error)
	Free(id string) error
	Open(id string) (*queue.Footage, error)
	Stats() (queue.Stats, error)
	Record(events ...queue.Event) error
}

// ErrStalled means central acknowledged nothing for the stall timeout: the transfer is
// failed and retried, never left hanging.
var ErrStalled = errors.New("uplink: transfer stalled")

// Sender uploads spooled recordings while central grants it, one recording at a time,
// with a window of chunks in flight, resuming from central's acknowledged offset.
//
// No one recording holds the others back (DESIGN.md, invariant 9): a recording whose
// transfer fails waits out its own backoff while the sender goes on with the next ones in
// the queue's order, and is tried again when its backoff ends. After StuckAfter failures
// in a row it is reported stuck (OnStuck), once, and unstuck (OnUnstuck) when central
// verifies it at last. What is not the recording's doing is no failure of it: central
// pausing, revoking or letting the grant expire (errStopped), the agent stopping, or the
// broker connection dropping under the transfer (the sender then waits for the
// connection, as it waits for a grant).
//
// The failure counts live in memory only. That is enough across a restart: the queue
// keeps the recording (Spooled) and nothing else depends on the count; a restarted sender
// tries it again at once and sends the others meanwhile as before; a recording still
// failing is reported stuck again after StuckAfter more attempts. The agent's fault
// record, not the sender, is what must outlive the restart, and since the sender forgets
// that it reported a recording stuck, a recording verified after a restart is announced
// through OnVerified only, not OnUnstuck.
type Sender struct {
	u   *Uplink
	src Source
	log *slog.Logger

	// StallTimeout fails a transfer that makes no progress for this long.
	StallTimeout time.Duration
	// ReceiptTimeout bounds the wait for central's receipt after the last byte.
	ReceiptTimeout time.Duration
	// OnIntegrity is called when a receipt's hash or size differs from the dock's.
	OnIntegrity func(id string, r wire.ReceiptMsg)
	// OnVerified is called after a recording is verified (and freed if allowed).
	OnVerified func(rec queue.Recording)

	// RetryMin is how long a recording whose transfer failed waits before it is tried
	// again; the wait doubles with each failure in a row, up to RetryMax. RetryMin and
	// RetryMax also pace retries after the connection dropped under a transfer.
	RetryMin, RetryMax time.Duration
	// Clock times the sender's waits, timeouts, pacing and backoffs (the real clock from
	// NewSender; tests give a clock.Fake and advance it). Set before Run.
	Clock clock.Clock
	// StuckAfter is how many failures in a row make a recording stuck (0: never).
	StuckAfter int
	// OnStuck is called, from the sender's goroutine, when a recording has failed
	// StuckAfter times in a row: once per episode, however often it fails after.
	// lastErr is the last failure. It must not block for long.
	OnStuck func(id string, attempts int, lastErr error)
	// OnUnstuck is called, from the sender's goroutine, when a recording reported stuck
	// is verified at last (through its transfer or a receipt arriving later), or has left
	// the queue otherwise; this ends the episode.
	OnUnstuck func(id string)

	kick chan struct{}

	mu      sync.Mutex
	first   []string          // recordings central asked for ahead of the queue order (a sample)
	retries map[string]*retry // recordings whose last transfer failed, by id
}

// ErrEarlyReceipt means a receipt named a recording central has not acknowledged whole.
var ErrEarlyReceipt = errors.New("uplink: receipt for a recording not uploaded whole")

// errStopped means central paused or revoked the grant, or its window closed, mid-recording:
// the lease is released and central keeps what it acknowledged.
var errStopped = errors.New("uplink: grant paused, revoked or expired")

// Prioritize puts recordings ahead of the queue order, in the order given.
func (s *Sender) Prioritize(ids []string) {
	s.mu.Lock()
	s.first = append(append([]string(nil), ids...), s.first...)
	s.mu.Unlock()
	s.Kick()
}

// NewSender makes a sender over u and src.
func NewSender(u *Uplink, src Source, log *slog.Logger) *Sender {
	return &Sender{u: u, src: src, log: log, Clock: clock.Real{}, StallTimeout: 20 * time.Second, ReceiptTimeout: 60 * time.Second,
		RetryMin: time.Second, RetryMax: 30 * time.Second, StuckAfter: 5,
		kick: make(chan struct{}, 1), retries: map[string]*retry{}}
}

// Kick tells the sender that new recordings were spooled.
func (s *Sender) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run uploads until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	var grant *wire.GrantMsg
	done := 0
	// After the connection dropped under a transfer, no transfer starts before hold.
	var hold time.Time
	offline := s.RetryMin
	tick, ticks := s.Clock.NewTicker(15 * time.Second)
	defer tick.Stop()
	s.announce(ctx)
	take := func(g wire.GrantMsg) {
		grant, done = &g, 0
		if g.Revoked {
			grant = nil
		}
		s.log.Info("uplink: grant", "grant", g.ID, "chunk", g.ChunkSize, "window", g.Window, "rate", g.RateBytes, "paused", g.Paused, "revoked", g.Revoked)
	}
	for ctx.Err() == nil {
		now := s.Clock.Now()
		active := grant != nil && grant.Active(now) && s.u.Connected()
		var rec queue.Recording
		found := false
		var wake time.Time // when to look again though nothing else happens
		switch {
		case active && now.Before(hold):
			wake = hold
		case active:
			var err error
			rec, found, wake, err = s.next(grant, now)
			if err != nil {
				s.log.Error("uplink: read queue", "err", err)
				wake = now.Add(s.RetryMin)
			}
		}
		if !found {
			// Nothing to do now: wait for a grant, a new recording, a receipt, a connect,
			// or the end of the earliest backoff.
			var backoff clock.Timer
			var ended <-chan time.Time // nil, never ready, with no backoff to wait out
			if !wake.IsZero() {
				backoff, ended = s.Clock.NewTimer(wake.Sub(now))
			}
			select {
			case <-ctx.Done():
				return
			case g := <-s.u.grants:
				take(g)
			case r := <-s.u.receipts:
				s.receipt(ctx, r)
			case <-s.kick:
				s.announce(ctx)
			case <-s.u.online:
				hold = time.Time{}
				_ = s.u.Announce(ctx)
				s.announce(ctx)
			case <-ticks:
				s.forget()
				s.announce(ctx)
			case <-ended:
			}
			if backoff != nil {
				backoff.Stop()
			}
			continue
		}
		conns, began := s.u.connections(), s.Clock.Now()
		regranted, err := s.transfer(ctx, rec, grant)
		if regranted != nil {
			take(*regranted)
		}
		switch {
		case err == nil:
			offline = s.RetryMin
			done++
			if grant != nil && grant.Max > 0 && done >= grant.Max {
				grant = nil
				s.announce(ctx)
			}
			// Take any grant change between recordings.
			select {
			case g := <-s.u.grants:
				take(g)
			default:
			}
		case errors.Is(err, errStopped):
			s.log.Info("uplink: transfer stopped by central", "recording", rec.ID, "err", err)
		case ctx.Err() != nil:
			return
		case errors.Is(err, mqttconn.ErrOffline) || !s.u.Connected() || s.u.connections() != conns:
			// The broker went away under the transfer: not the recording's failure.
			s.log.Warn("uplink: connection lost during transfer, will retry", "recording", rec.ID, "err", err, "backoff", offline)
			hold = s.Clock.Now().Add(offline)
			offline = min(2*offline, s.RetryMax)
		default:
			s.failed(rec.ID, err, s.Clock.Since(began))
		}
	}
}

// next picks what to upload: central's sample first, then the grant's named recordings,
// then queue order, passing over recordings that wait out a backoff. When every
// candidate is backing off, wake is when the earliest backoff ends.
func (s *Sender) next(g *wire.GrantMsg, now time.Time) (rec queue.Recording, found bool, wake time.Time, err error) {
	ready := func(id string) bool {
		until, waiting := s.backingOff(id, now)
		if waiting && (wake.IsZero() || until.Before(wake)) {
			wake = until
		}
		return !waiting
	}
	s.mu.Lock()
	first := append([]string(nil), s.first...)
	// Recordings backing off now: the queue's first len+1 hold one that is not, if any.
	waiting := 0
	for _, r := range s.retries {
		if now.Before(r.next) {
			waiting++
		}
	}
	s.mu.Unlock()
	for _, id := range first {
		r, err := s.src.Get(id)
		if err == nil && r.State == queue.Spooled {
			if ready(id) {
				return r, true, time.Time{}, nil
			}
			continue
		}
		s.mu.Lock()
		s.first = slices.DeleteFunc(s.first, func(x string) bool { return x == id })
		s.mu.Unlock()
	}
	for _, id := range g.Recordings {
		r, err := s.src.Get(id)
		if err == nil && r.State == queue.Spooled && ready(id) {
			return r, true, time.Time{}, nil
		}
	}
	p, err := s.src.Pending(waiting + 1)
	if err != nil {
		return queue.Recording{}, false, wake, err
	}
	for _, r := range p {
		if ready(r.ID) {
			return r, true, time.Time{}, nil
		}
	}
	return queue.Recording{}, false, wake, nil
}

func (s *Sender) announce(ctx context.Context) {
	st, err := s.src.Stats()
	if err != nil {
		s.log.Error("uplink: queue stats", "err", err)
		return
	}
	b := wire.BacklogMsg{
		Count:  st.Count[queue.Spooled] + st.Count[queue.Uploading],
		Bytes:  st.Bytes[queue.Spooled] + st.Bytes[queue.Uploading],
		Oldest: st.Oldest, Time: s.Clock.Now().UTC(),
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.u.Backlog(ctx, b); err != nil {
		s.log.Debug("uplink: backlog not announced", "err", err)
	}
}

// Meta is what central files a recording under.
func Meta(r queue.Recording) wire.RecordingMeta {
	return wire.RecordingMeta{ID: r.ID, Name: r.Name, Device: r.Device, Officer: r.Officer, Team: r.Team,
		Start: r.Start, End: r.End, Class: string(r.Class), Hold: r.Hold, ClockDrift: r.ClockDrift.Milliseconds(),
		ClockUnverified: r.ClockUnverified}
}

// settle applies central's receipt for the recording being sent. finished reports
// whether the lease ended in a verified recording.
func (s *Sender) settle(ctx context.Context, id string, r wire.ReceiptMsg) (finished bool, err error) {
	if r.Error != "" {
		if s.OnIntegrity != nil {
			s.OnIntegrity(id, r)
		}
		return false, fmt.Errorf("central refused %s: %s", id, r.Error)
	}
	// A receipt applies only to a recording this dock uploaded whole and central
	// acknowledged to the last byte (the sender persists that before it sends end), or
	// one already verified: no receipt frees footage central was never sent.
	cur, err := s.src.Get(id)
	if err != nil {
		return false, err
	}
	if cur.State != queue.Verified && cur.State != queue.Freed && cur.Acked != cur.Size {
		err := fmt.Errorf("%w: %s (%d of %d bytes acknowledged)", ErrEarlyReceipt, id, cur.Acked, cur.Size)
		s.log.Warn("uplink: receipt refused", "recording", id, "err", err)
		offer(s.u.rejects, Rejected{Topic: wire.CentralTopic(s.u.o.Dock, wire.TopicReceipt), Err: err})
		return false, err
	}
	rec, err := s.src.Verify(id, r.SHA256, r.Size)
	if err != nil {
		if errors.Is(err, queue.ErrHashMismatch) && s.OnIntegrity != nil {
			s.OnIntegrity(id, r)
		}
		return false, err
	}
	if rec.Freeable() {
		if err := s.src.Free(id); err != nil {
			s.log.Error("uplink: free", "recording", id, "err", err)
		} else {
			rec.State = queue.Freed
		}
	}
	s.log.Info("uplink: recording verified by central", "recording", id, "sha256", r.SHA256, "state", rec.State)
	s.succeeded(id)
	if s.OnVerified != nil {
		s.OnVerified(rec)
	}
	return true, nil
}

// receipt handles a receipt for a recording not being sent now (a repeat after a restart).
func (s *Sender) receipt(ctx context.Context, r wire.ReceiptMsg) {
	rec, err := s.src.Get(r.Recording)
	if errors.Is(err, queue.ErrNotFound) {
		// Central filed an upload under this dock's name that this agent never sent (a
		// forged upload with this dock's certificate): disowned in the ledger, which central
		// chains and raises an alert on (uplink/central/attest.go).
		s.log.Error("uplink: receipt for a recording this dock does not hold", "recording", r.Recording, "sha256", r.SHA256)
		ev := queue.Event{Kind: queue.EvRejected, Recording: r.Recording,
			Detail: fmt.Sprintf("receipt for a recording this dock does not hold (sha256 %s size %d): not uploaded by this agent", r.SHA256, r.Size)}
		if err := s.src.Record(ev); err != nil {
			s.log.Error("uplink: recording a disowned receipt", "recording", r.Recording, "err", err)
		}
		return
	}
	if err != nil {
		s.log.Warn("uplink: receipt not applied", "recording", r.Recording, "err", err)
		return
	}
	if rec.State == queue.Freed {
		return
	}
	if _, err := s.settle(ctx, r.Recording, r); err != nil {
		s.log.Warn("uplink: receipt not applied", "recording", r.Recording, "err", err)
	}
}
