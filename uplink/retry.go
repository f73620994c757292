package uplink

import (
	"errors"
	"time"

	"dock/queue"
)

// retry is a recording's run of failed transfers.
type retry struct {
	failures int       // in a row
	next     time.Time // not tried again before
	stuck    bool      // reported to OnStuck in this episode
}

// retryDelay is the backoff after the given number of failures in a row: lo, doubled
// for each failure after the first, at most hi.
func retryDelay(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// failed counts a failed transfer of recording id, which took took, against it: it backs
// off alone, and is reported stuck once it has failed StuckAfter times in a row. The
// backoff lasts at least as long as the failed attempt did, so that a recording whose
// attempts end in a timeout (central silent for 20 s, or 60 s for a receipt) takes at
// most half of the sender's time from the others.
func (s *Sender) failed(id string, err error, took time.Duration) {
	s.mu.Lock()
	r := s.retries[id]
	if r == nil {
		r = &retry{}
		s.retries[id] = r
	}
	r.failures++
	delay := max(retryDelay(s.RetryMin, s.RetryMax, r.failures), took)
	r.next = s.Clock.Now().Add(delay)
	report := s.StuckAfter > 0 && r.failures >= s.StuckAfter && !r.stuck
	r.stuck = r.stuck || report
	n := r.failures
	s.mu.Unlock()
	s.log.Warn("uplink: transfer failed, recording backs off while others go ahead", "recording", id, "err", err, "failures", n, "backoff", delay)
	if report {
		s.log.Error("uplink: recording stuck", "recording", id, "failures", n, "err", err)
		if s.OnStuck != nil {
			s.OnStuck(id, n, err)
		}
	}
}

// succeeded ends recording id's run of failures, reporting it unstuck if it was stuck.
func (s *Sender) succeeded(id string) {
	s.mu.Lock()
	r := s.retries[id]
	delete(s.retries, id)
	s.mu.Unlock()
	if r != nil && r.stuck {
		s.log.Info("uplink: recording no longer stuck", "recording", id, "failures", r.failures)
		if s.OnUnstuck != nil {
			s.OnUnstuck(id)
		}
	}
}

// forget drops the failures of recordings that are no longer waiting to upload (verified
// or freed by a way other than the sender's, or gone from the queue).
func (s *Sender) forget() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.retries))
	for id := range s.retries {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		r, err := s.src.Get(id)
		if err == nil && (r.State == queue.Spooled || r.State == queue.Uploading) {
			continue
		}
		if err != nil && !errors.Is(err, queue.ErrNotFound) {
			continue // cannot tell now
		}
		s.succeeded(id)
	}
}

// backingOff reports whether recording id waits out a backoff at now, and until when.
func (s *Sender) backingOff(id string, now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.retries[id]; r != nil && now.Before(r.next) {
		return r.next, true
	}
	return time.Time{}, false
}
