package camlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// ErrNoReply means the camera did not answer a request within its timeout, after every
// retry. It is transient: the link or the camera may recover.
var ErrNoReply = errors.New("camlink: no reply")

// ErrClosed means the link was closed or its port failed.
var ErrClosed = errors.New("camlink: link closed")

// RemoteError is a camera's own refusal of a request. It is permanent for that request.
type RemoteError struct {
	Code    Code
	Message string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("camera refused %s: %s", e.Code, e.Message) }

// Link drives the dock side of protocol v1 over a byte stream (a serial port): one
// request at a time, each with a timeout and a bounded number of retries.
type Link struct {
	port    io.ReadWriteCloser
	log     *slog.Logger
	timeout time.Duration
	retries int

	callMu sync.Mutex // one request in flight
	seq    uint8

	frames chan Frame
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the reader ends

	mu      sync.Mutex
	dec     Decoder
	readErr error
	resync  bool
	closing sync.Once
}

// NewLink starts a link over port. timeout bounds each attempt; retries is how many more
// attempts follow the first.
func NewLink(port io.ReadWriteCloser, timeout time.Duration, retries int, log *slog.Logger) *Link {
	l := &Link{port: port, log: log, timeout: timeout, retries: retries, frames: make(chan Frame, 16), stop: make(chan struct{}), done: make(chan struct{})}
	go l.read()
	return l
}

func (l *Link) read() {
	defer close(l.done)
	buf := make([]byte, 4096)
	for {
		n, err := l.port.Read(buf)
		if n > 0 {
			l.mu.Lock()
			if l.resync {
				l.dec.Resync()
				l.resync = false
			}
			l.dec.Write(buf[:n])
			var out []Frame
			for {
				f, ok := l.dec.Next()
				if !ok {
					break
				}
				out = append(out, f)
			}
			l.mu.Unlock()
			for _, f := range out {
				select {
				case l.frames <- f:
				default: // nobody waiting and the queue is full: drop the stale reply
				}
			}
		}
		if err != nil {
			// tarm/serial reports a read timeout as (0, io.EOF): nothing yet.
			if n == 0 && errors.Is(err, io.EOF) {
				select {
				case <-l.stop:
					return
				default:
					continue
				}
			}
			l.mu.Lock()
			l.readErr = err
			l.mu.Unlock()
			return
		}
	}
}

// Garbage returns the most recent bytes the link discarded as not being valid frames,
// and how many were discarded in all: kept for diagnosing a camera that answers garbage.
func (l *Link) Garbage() ([]byte, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dec.Garbage(), l.dec.Discarded
}

// Close stops the link and closes its port.
func (l *Link) Close() error {
	var err error
	l.closing.Do(func() {
		l.mu.Lock()
		if l.readErr == nil {
			l.readErr = ErrClosed
		}
		l.mu.Unlock()
		close(l.stop)
		err = l.port.Close()
		select {
		case <-l.done:
		case <-time.After(2 * time.Second):
		}
	})
	return err
}

// Call sends code with req as its payload and decodes the reply into resp.
func (l *Link) Call(ctx context.Context, code Code, req, resp any) error {
	return l.call(ctx, code, req, resp, l.timeout, nil)
}

// errBadReply marks an attempt whose reply came but could not be used: worth another.
var errBadReply = errors.New("unusable reply")

// call makes up to 1 + retries attempts of a request, each waiting timeout for its reply.
// overdue, if set, runs after an attempt went unanswered, outside the request lock; if it
// reports the request's effect is already there, call ends without error.
func (l *Link) call(ctx context.Context, code Code, req, resp any, timeout time.Duration, overdue func(context.Context) bool) error {
	payload, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s: %w", code, err)
	}
	var lastErr error = ErrNoReply
	for attempt := 0; attempt <= l.retries; attempt++ {
		err := l.attempt(ctx, code, payload, resp, timeout)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errBadReply):
			lastErr = err
			continue
		case !errors.Is(err, ErrNoReply):
			return err
		}
		l.log.Debug("camera reply overdue", "command", code.String(), "attempt", attempt+1)
		if overdue != nil && overdue(ctx) {
			return nil
		}
	}
	return fmt.Errorf("%s after %d attempts: %w", code, l.retries+1, lastErr)
}

// attempt sends one request and waits up to timeout for its reply.
func (l *Link) attempt(ctx context.Context, code Code, payload []byte, resp any, timeout time.Duration) error {
	l.callMu.Lock()
	defer l.callMu.Unlock()
	l.seq++
	seq := l.seq
	frame, err := AppendFrame(nil, Frame{Code: code, Seq: seq, Payload: payload})
	if err != nil {
		return fmt.Errorf("encode %s: %w", code, err)
	}
	if _, err := l.port.Write(frame); err != nil {
		return fmt.Errorf("write %s: %w: %w", code, ErrClosed, err)
	}
	reply, err := l.await(ctx, seq, timeout)
	if err != nil {
		if errors.Is(err, ErrNoReply) {
			l.mu.Lock()
			l.resync = true
			l.mu.Unlock()
			return err
		}
		return fmt.Errorf("%s: %w", code, err)
	}
	if reply.Code == CodeError {
		var e ErrorReply
		_ = json.Unmarshal(reply.Payload, &e)
		return &RemoteError{Code: code, Message: e.Message}
	}
	if reply.Code != code.Reply() {
		return fmt.Errorf("%s: reply code %s: %w", code, reply.Code, errBadReply)
	}
	if err := Decode(reply.Payload, resp); err != nil {
		return fmt.Errorf("%s reply: %w: %w", code, errBadReply, err)
	}
	return nil
}

func (l *Link) await(ctx context.Context, seq uint8, timeout time.Duration) (Frame, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case f := <-l.frames:
			if f.Seq == seq {
				return f, nil
			}
			// A late reply to an earlier attempt: skip it.
		case <-l.done:
			l.mu.Lock()
			err := l.readErr
			l.mu.Unlock()
			return Frame{}, fmt.Errorf("%w: %v", ErrClosed, err)
		case <-t.C:
			return Frame{}, ErrNoReply
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// Identify asks the camera who it is.
func (l *Link) Identify(ctx context.Context) (Identity, error) {
	var id Identity
	return id, l.Call(ctx, CodeIdentify, Empty{}, &id)
}

// Battery reads the camera's battery.
func (l *Link) Battery(ctx context.Context) (Battery, error) {
	var b Battery
	return b, l.Call(ctx, CodeBattery, Empty{}, &b)
}

// Storage reads the camera's storage health.
func (l *Link) Storage(ctx context.Context) (Storage, error) {
	var s Storage
	return s, l.Call(ctx, CodeStorage, Empty{}, &s)
}

// List reads every recording the camera holds, page by page, within lim (zero fields take
// DefaultListLimits). Each entry is checked on its own (CheckEntry, and a name listed twice
// is refused): the good ones are Files, the others Refused, and neither stops the rest.
// Only a listing that cannot be read or believed as a whole is an error: the link failed,
// a page did not decode, the pages contradict each other (ErrBadListing), or it did not
// end within lim (ErrBadListing).
func (l *Link) List(ctx context.Context, lim ListLimits) (Listing, error) {
	ls := newLister(lim)
	lctx, cancel := context.WithTimeout(ctx, ls.lim.Deadline)
	defer cancel()
	for {
		var p listReply
		if err := l.Call(lctx, CodeList, ListRequest{Offset: ls.offset}, &p); err != nil {
			if ctx.Err() == nil && lctx.Err() != nil {
				return Listing{}, fmt.Errorf("%w: not finished within %s (%d entries taken, total %d, %d pages)", ErrBadListing, ls.lim.Deadline, ls.offset, ls.total, ls.pages)
			}
			return Listing{}, fmt.Errorf("list at offset %d: %w", ls.offset, err)
		}
		done, err := ls.add(&p)
		if err != nil {
			return Listing{}, err
		}
		if done {
			return ls.listing(), nil
		}
	}
}

// Auth unlocks the camera's storage so the dock can read it.
func (l *Link) Auth(ctx context.Context, password string) error {
	return l.Call(ctx, CodeAuth, AuthRequest{Password: password}, &Empty{})
}

// Delete frees one recording on the camera. A name that fails CheckName is not sent.
func (l *Link) Delete(ctx context.Context, name string, size int64) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	// An unanswered delete may still have happened (a large file on a slow card takes
	// its time, or the reply was lost): the camera's listing says, before another attempt
	// that would be refused for a file already gone.
	gone := func(ctx context.Context) bool {
		listing, err := l.List(ctx, ListLimits{})
		if err != nil || listing.Truncated != "" {
			return false
		}
		for _, f := range listing.Files {
			if f.Name == name {
				return false
			}
		}
		for _, r := range listing.Refused {
			if r.Name == name {
				return false
			}
		}
		l.log.Info("camera delete went unanswered, but the file is gone", "name", name, "size", size)
		return true
	}
	return l.call(ctx, CodeDelete, DeleteRequest{Name: name, Size: size}, &Empty{}, DeleteTimeout(l.timeout, size), gone)
}

// deleteRate is the slowest rate at which a camera's card is expected to free a file:
// deleting a long recording from a FAT or exFAT card walks its whole cluster chain.
const deleteRate = 1 << 30 // bytes per second

// DeleteTimeout is how long one attempt to delete a file of size bytes waits for the
// camera's answer: the link's timeout, plus a second per GiB.
func DeleteTimeout(timeout time.Duration, size int64) time.Duration {
	return timeout + time.Duration(max(size, 0)/deleteRate)*time.Second
}

// SetClock sets the camera's clock to now and returns its drift before the change.
func (l *Link) SetClock(ctx context.Context, now time.Time) (time.Duration, error) {
	var r SetClockReply
	err := l.Call(ctx, CodeSetClock, SetClockRequest{UnixMilli: now.UnixMilli()}, &r)
	return time.Duration(r.DriftMilli) * time.Millisecond, err
}

// Lock takes the camera out of service.
func (l *Link) Lock(ctx context.Context, reason string) error {
	return l.Call(ctx, CodeLock, LockRequest{Reason: reason}, &Empty{})
}

// Unlock returns the camera to service.
func (l *Link) Unlock(ctx context.Context) error {
	return l.Call(ctx, CodeUnlock, Empty{}, &Empty{})
}
