package central

import (
	"context"
	"errors"
	"fmt"

	"dock/uplink/wire"
)

// reply is central's answer to one of a dock's transfer messages: an ack or a receipt.
type reply struct {
	ack     *wire.AckMsg
	receipt *wire.ReceiptMsg
	err     error // why a chunk was refused
}

// answer sends a reply; an ack of a chunk goes without waiting for the broker.
func (r *Receiver) answer(ctx context.Context, dock string, a reply, async bool) error {
	switch {
	case a.receipt != nil:
		return r.publish(ctx, dock, wire.TopicReceipt, *a.receipt)
	case a.ack != nil && async && a.ack.Error == "":
		return r.ack(dock, *a.ack)
	case a.ack != nil:
		return r.publish(ctx, dock, wire.TopicAck, *a.ack)
	}
	return nil
}

func (r *Receiver) begin(ctx context.Context, dock string, b wire.BeginMsg) error {
	a, err := answerBegin(r.o.Store, r.o.Limits, dock, b)
	switch {
	case err != nil:
		r.log.Error("central: begin failed, the dock is told why and retries", "dock", dock, "recording", clip(b.Recording.ID, maxIDLen), "err", err)
	case a.receipt != nil && a.receipt.Error != "":
		r.log.Error("central: other bytes for a filed recording refused", "dock", dock, "recording", b.Recording.ID,
			"filed_sha256", a.receipt.SHA256, "dock_sha256", b.SHA256)
	case a.receipt != nil && r.o.Observer != nil:
		// Filed already (the receipt was lost, or central stopped before its observer took
		// it): observed again before the receipt goes.
		if s, ok, err := r.o.Store.Filed(dock, b.Recording.ID); err != nil || !ok {
			return fmt.Errorf("filed %s: %v (found %v)", b.Recording.ID, err, ok)
		} else if err := r.observeFiled(dock, s); err != nil {
			return err
		}
	}
	return r.answer(ctx, dock, a, false)
}

// answerBegin is central's answer to a dock's begin: the offset it holds, or, for a
// recording the dock already filed, its receipt again. A begin central fails on (err) is
// answered too, with an ack whose error names the reason: the dock fails the transfer and
// tries it again after its backoff, and reports the recording stuck if that goes on. So is
// a new upload past the dock's limits (lim.admit): the dock tries again later.
func answerBegin(st Storage, lim Limits, dock string, b wire.BeginMsg) (reply, error) {
	id := b.Recording.ID
	refuse := func(err error) (reply, error) {
		return reply{ack: &wire.AckMsg{Transfer: b.Transfer, Recording: id, Error: err.Error()}}, err
	}
	if s, ok, err := st.Filed(dock, id); err != nil {
		return refuse(err)
	} else if ok {
		// Already verified: answer with the receipt again (idempotent by dock and
		// recording id; never another dock's record).
		return filedReceipt(s, filedAs(s, b.Size, b.SHA256)), nil
	}
	if err := errors.Join(safe(dock), safe(id)); err != nil {
		return refuse(err)
	}
	if err := lim.admit(st, dock, b); err != nil {
		return refuse(err)
	}
	up, err := st.Begin(dock, b.Transfer, b.Recording, b.Size, b.SHA256)
	if filed := (*FiledError)(nil); errors.As(err, &filed) {
		return filedReceipt(filed.Stored, err), nil
	}
	if err != nil {
		return refuse(err)
	}
	return reply{ack: &wire.AckMsg{Transfer: b.Transfer, Recording: id, Offset: up.Held}}, nil
}

func (r *Receiver) chunk(ctx context.Context, dock string, c wire.Chunk) error {
	r.received.Add(int64(len(c.Data)))
	if safe(c.Recording) == nil && r.firstChunk(dock, c.Recording) {
		r.log.Info("central: receiving chunks", "dock", dock, "recording", c.Recording, "instance", r.o.ClientID)
	}
	a := answerChunk(r.o.Store, r.o.Limits, dock, c)
	if a.ack != nil && errors.Is(a.err, ErrLimit) {
		r.log.Warn("central: chunk refused", "dock", dock, "recording", clip(c.Recording, maxIDLen), "err", a.err)
	}
	return r.answer(ctx, dock, a, true)
}

// answerChunk stores a chunk and acknowledges the contiguous offset. A chunk longer than
// the granted chunk size (lim.MaxChunk) is refused with an error, and nothing of it kept.
func answerChunk(st Storage, lim Limits, dock string, c wire.Chunk) reply {
	if err := lim.checkChunk(c); err != nil {
		return reply{ack: &wire.AckMsg{Recording: c.Recording, Error: err.Error()}, err: err}
	}
	up, err := st.Write(dock, c.Recording, c.Offset, c.Data)
	if err != nil {
		return reply{ack: &wire.AckMsg{Recording: c.Recording, Error: err.Error()}}
	}
	return reply{ack: &wire.AckMsg{Transfer: up.Transfer, Recording: c.Recording, Offset: up.Held}}
}

func (r *Receiver) end(ctx context.Context, dock string, e wire.EndMsg) error {
	a, s, err := answerEnd(r.o.Store, dock, e)
	var bad *MismatchError
	var filed *FiledError
	switch {
	case errors.As(err, &bad):
		r.log.Error("central: hash mismatch", "dock", dock, "recording", e.Recording, "central", bad.SHA256, "dock_sha256", e.SHA256)
	case errors.As(err, &filed):
		r.log.Error("central: other bytes for a filed recording refused", "dock", dock, "recording", e.Recording,
			"filed_sha256", filed.Stored.SHA256, "dock_sha256", e.SHA256)
	case err != nil:
		r.log.Error("central: end failed, the dock is told why and retries", "dock", dock, "recording", clip(e.Recording, maxIDLen), "err", err)
	case a.receipt != nil && a.receipt.Error == "":
		r.streamDone(dock, e.Recording)
		r.log.Info("central: recording verified", "dock", dock, "recording", e.Recording, "bytes", s.Size, "sha256", s.SHA256)
		if err := r.observeFiled(dock, s); err != nil {
			return err // no receipt: the dock sends its end again
		}
	}
	return r.answer(ctx, dock, a, false)
}

// filedReceipt is the receipt of a filed recording: refusing, with what was filed, other
// bytes announced for it (err a *FiledError with Other).
func filedReceipt(s Stored, err error) reply {
	rc := &wire.ReceiptMsg{Recording: s.Meta.ID, Size: s.Size, SHA256: s.SHA256, Stored: s.Stored}
	if filed := (*FiledError)(nil); errors.As(err, &filed) && filed.Other {
		rc.Error = "already filed with other bytes"
	}
	return reply{receipt: rc}
}

// answerEnd finishes an upload: the receipt, an ack of the offset held if bytes are
// missing, or a refusal with central's hash. Central's own failure (err, none of those) is
// answered with an ack whose error names the reason: the dock fails the transfer and
// tries it again after its backoff (begin, then end), and reports it stuck if that goes on.
func answerEnd(st Storage, dock string, e wire.EndMsg) (reply, Stored, error) {
	s, err := st.Finish(dock, e.Recording, e.Size, e.SHA256)
	var inc *IncompleteError
	var bad *MismatchError
	var filed *FiledError
	switch {
	case errors.As(err, &filed):
		return filedReceipt(filed.Stored, err), filed.Stored, err
	case errors.As(err, &inc):
		return reply{ack: &wire.AckMsg{Transfer: e.Transfer, Recording: e.Recording, Offset: inc.Held, Error: "incomplete"}}, s, nil
	case errors.As(err, &bad):
		return reply{receipt: &wire.ReceiptMsg{Recording: e.Recording, Size: bad.Size, SHA256: bad.SHA256, Error: "hash mismatch"}}, s, err
	case err != nil:
		return reply{ack: &wire.AckMsg{Transfer: e.Transfer, Recording: e.Recording, Error: err.Error()}}, s, err
	}
	return reply{receipt: &wire.ReceiptMsg{Recording: e.Recording, Size: s.Size, SHA256: s.SHA256, Stored: s.Stored}}, s, nil
}
