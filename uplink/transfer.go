package uplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"dock/queue"
	"dock/uplink/wire"
)

// transfer is one recording's upload under a grant, in explicit steps: begin (central
// answers with the offset it holds, or with a receipt when it has the whole recording),
// send windows of chunks until central has acknowledged every byte, end (central answers
// with its receipt), and settle the receipt. Each step that may meet central's receipt
// returns it, and the steps after are skipped. The recording is leased for the transfer;
// a lease that does not end in a verified recording is released.
type transfer struct {
	s   *Sender
	rec queue.Recording
	id  string // grant id/recording id
	// grant is the grant in force: the one the transfer began under, or one since.
	grant *wire.GrantMsg
	// regranted is a grant that arrived during the transfer, for Run to take after it.
	regranted *wire.GrantMsg
	footage   *queue.Footage

	acked         int64 // central's offset: every byte before it is acknowledged
	sent          int64 // published; sent-acked are in flight
	chunk, window int64
	// The granted rate is averaged over what was sent since rateFrom, from rateFromOff.
	rateFrom     time.Time
	rateFromOff  int64
	lastProgress time.Time // when central's offset last moved
	unsaved      int       // acks since the offset was last persisted
	verified     bool      // the lease ended in a verified recording
}

// transfer uploads rec under g. regranted is a grant that arrived meanwhile, which the
// caller takes as the one in force.
func (s *Sender) transfer(ctx context.Context, rec queue.Recording, g *wire.GrantMsg) (regranted *wire.GrantMsg, err error) {
	t := &transfer{s: s, rec: rec, id: g.ID + "/" + rec.ID, grant: g}
	if _, err := s.src.Lease(rec.ID, t.id); err != nil {
		return nil, err
	}
	err = t.run(ctx)
	if !t.verified {
		why := "aborted"
		if err != nil {
			why = err.Error()
		}
		if _, rerr := s.src.Release(rec.ID, why); rerr != nil {
			s.log.Error("uplink: release lease", "recording", rec.ID, "err", rerr)
		}
	}
	return t.regranted, err
}

// run takes the leased recording through the steps.
func (t *transfer) run(ctx context.Context) error {
	f, err := t.s.src.Open(t.rec.ID)
	if err != nil {
		return err
	}
	defer f.Close()
	t.footage = f
	receipt, err := t.begin(ctx)
	if err == nil && receipt == nil {
		receipt, err = t.send(ctx)
	}
	if err == nil && receipt == nil {
		receipt, err = t.end(ctx)
	}
	if err != nil {
		return err
	}
	t.verified, err = t.s.settle(ctx, t.rec.ID, *receipt)
	return err
}

// begin announces the recording and takes central's offset: central's, not the dock's
// own memory, is where the upload resumes.
func (t *transfer) begin(ctx context.Context) (*wire.ReceiptMsg, error) {
	rec := t.rec
	w, err := t.s.ask(ctx, rec.ID, t.s.StallTimeout, acksAndReceipts, func(c context.Context) error {
		return t.s.u.publish(c, wire.TopicBegin, false, wire.BeginMsg{Transfer: t.id, Recording: Meta(rec), Size: rec.Size, SHA256: rec.SHA256})
	})
	if err != nil {
		return nil, fmt.Errorf("begin %s: %w", rec.ID, err)
	}
	if w.receipt != nil {
		return w.receipt, nil
	}
	t.s.log.Info("uplink: transfer", "recording", rec.ID, "size", rec.Size, "from", w.offset)
	t.acked, t.sent, t.lastProgress = w.offset, w.offset, t.s.Clock.Now()
	t.use(t.grant)
	return nil, nil
}

// use takes g's chunk size, window and rate from the bytes sent so far.
func (t *transfer) use(g *wire.GrantMsg) {
	t.chunk, t.window = int64(g.ChunkSize), int64(g.Window)
	t.rateFrom, t.rateFromOff = t.s.Clock.Now(), t.sent
}

// send publishes windows of chunks and takes central's acks until central has
// acknowledged every byte. A window central leaves unanswered is sent again from its
// offset; no progress for the stall timeout fails the transfer.
func (t *transfer) send(ctx context.Context) (*wire.ReceiptMsg, error) {
	rec := t.rec
	for t.acked < rec.Size {
		select {
		case ng := <-t.s.u.grants:
			if err := t.regrant(ng); err != nil {
				return nil, err
			}
		default:
			if !t.grant.Active(t.s.Clock.Now()) {
				return nil, t.regrant(*t.grant)
			}
		}
		if err := t.sendWindow(ctx); err != nil {
			return nil, err
		}
		w, err := t.s.await(ctx, rec.ID, min(resendEvery, t.s.StallTimeout/2), acksReceiptsAndGrants)
		switch {
		case errors.Is(err, ErrStalled):
			if t.s.Clock.Since(t.lastProgress) >= t.s.StallTimeout {
				return nil, fmt.Errorf("%w: %s at %d of %d", ErrStalled, rec.ID, t.acked, rec.Size)
			}
			t.sent = t.acked // go back: resend the window from central's offset
			continue
		case err != nil:
			return nil, err
		case w.grant != nil:
			if err := t.regrant(*w.grant); err != nil {
				return nil, err
			}
			continue
		case w.receipt != nil:
			return w.receipt, nil
		}
		if err := t.acknowledged(w.offset); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// sendWindow publishes chunks from sent until the window is full or the recording sent,
// under the granted rate.
func (t *transfer) sendWindow(ctx context.Context) error {
	rec, topic := t.rec, wire.DockTopic(t.s.u.o.Dock, wire.TopicChunk)
	for t.sent < rec.Size && t.sent-t.acked < t.window*t.chunk {
		n := min(t.chunk, rec.Size-t.sent)
		// The spool is read straight into the chunk's payload. A ReaderAt may report
		// io.EOF along with a full read of the last bytes.
		frame, data := wire.FrameChunk(rec.ID, t.sent, int(n))
		if m, err := t.footage.ReadAt(data, t.sent); int64(m) != n || (err != nil && !errors.Is(err, io.EOF)) {
			return fmt.Errorf("read spool %s at %d: %d of %d bytes: %w", rec.ID, t.sent, m, n, err)
		}
		wire.SealChunk(frame)
		if _, err := t.s.u.conn.PublishAsync(topic, 1, frame); err != nil {
			return err
		}
		t.sent += n
		if t.grant.RateBytes <= 0 {
			continue
		}
		// Stay under the granted rate: sleep until the average allows the next chunk.
		due := t.rateFrom.Add(time.Duration(float64(t.sent-t.rateFromOff) / float64(t.grant.RateBytes) * float64(time.Second)))
		if d := due.Sub(t.s.Clock.Now()); d > 0 {
			pace, paced := t.s.Clock.NewTimer(d)
			select {
			case <-ctx.Done():
				pace.Stop()
				return ctx.Err()
			case ng := <-t.s.u.grants:
				pace.Stop()
				if err := t.regrant(ng); err != nil {
					return err
				}
			case <-paced:
			}
		}
	}
	return nil
}

// regrant applies a grant that arrived mid-recording: it stops the transfer (central
// keeps what it acknowledged), or the transfer goes on under the new chunk size, window
// and rate.
func (t *transfer) regrant(ng wire.GrantMsg) error {
	t.regranted, t.grant = &ng, &ng
	if !ng.Active(t.s.Clock.Now()) {
		if err := t.s.src.Progress(t.rec.ID, t.acked); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s at %d of %d bytes (grant %s)", errStopped, t.rec.ID, t.acked, t.rec.Size, ng.ID)
	}
	t.use(&ng)
	return nil
}

// acknowledged takes central's offset off, persisting it every 16 acks for resume.
func (t *transfer) acknowledged(off int64) error {
	if off <= t.acked {
		return nil
	}
	t.acked, t.lastProgress = off, t.s.Clock.Now()
	if t.unsaved++; t.unsaved < 16 {
		return nil
	}
	t.unsaved = 0
	return t.s.src.Progress(t.rec.ID, t.acked)
}

// end persists that central acknowledged the whole recording, then asks for the receipt.
func (t *transfer) end(ctx context.Context) (*wire.ReceiptMsg, error) {
	rec := t.rec
	if err := t.s.src.Progress(rec.ID, t.acked); err != nil {
		return nil, err
	}
	w, err := t.s.ask(ctx, rec.ID, t.s.ReceiptTimeout, receiptOnly, func(c context.Context) error {
		return t.s.u.publish(c, wire.TopicEnd, false, wire.EndMsg{Transfer: t.id, Recording: rec.ID, Size: rec.Size, SHA256: rec.SHA256})
	})
	if err != nil {
		return nil, fmt.Errorf("receipt %s: %w", rec.ID, err)
	}
	return w.receipt, nil
}

// resendEvery is how often an unanswered begin or end is sent again (both are idempotent
// at central); a reply lost to a broker restart costs seconds, not the whole timeout.
const resendEvery = 3 * time.Second

// listening is which of central's words a wait returns.
type listening int

const (
	acksAndReceipts       listening = iota // an ack (its offset) or a receipt
	acksReceiptsAndGrants                  // also a new grant
	receiptOnly                            // a receipt; late acks of chunks are passed over
)

// word is central's answer on a recording: an ack's offset, a receipt, or a new grant.
type word struct {
	offset  int64
	receipt *wire.ReceiptMsg
	grant   *wire.GrantMsg
}

// ask publishes a request and waits for central's answer on recording id, publishing it
// again every resendEvery, for at most total.
func (s *Sender) ask(ctx context.Context, id string, total time.Duration, listen listening, send func(context.Context) error) (word, error) {
	deadline := s.Clock.Now().Add(total)
	for {
		pctx, cancel := context.WithTimeout(ctx, resendEvery)
		err := send(pctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return word{}, ctx.Err()
		}
		wait := min(resendEvery, deadline.Sub(s.Clock.Now()))
		w, err := s.await(ctx, id, wait, listen)
		if !errors.Is(err, ErrStalled) || s.Clock.Now().After(deadline) {
			return w, err
		}
	}
}

// await waits up to timeout (then ErrStalled) for central's next word on recording id
// that listen takes. An ack carrying an error fails the transfer; a receipt for another
// recording is applied on the way.
func (s *Sender) await(ctx context.Context, id string, timeout time.Duration, listen listening) (word, error) {
	var grants <-chan wire.GrantMsg // nil, never ready: grants wait for the caller
	if listen == acksReceiptsAndGrants {
		grants = s.u.grants
	}
	t, expired := s.Clock.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return word{}, ctx.Err()
		case <-expired:
			return word{}, ErrStalled
		case g := <-grants:
			return word{grant: &g}, nil
		case a := <-s.u.acks:
			if a.Recording != id {
				continue
			}
			if a.Error != "" {
				return word{}, fmt.Errorf("central: %s", a.Error)
			}
			if listen == receiptOnly {
				continue // a late ack of a chunk
			}
			return word{offset: a.Offset}, nil
		case r := <-s.u.receipts:
			if r.Recording != id {
				s.receipt(ctx, r)
				continue
			}
			return word{receipt: &r}, nil
		}
	}
}
