// Package clock owns time as a dependency of the dock and of central (the shape of
// tailscale's tstime.Clock): the real clock, and Fake, which tests advance instead of sleeping.
package clock

import "time"

// Clock is what code that waits or stamps needs of time.
type Clock interface {
	Now() time.Time
	Since(t time.Time) time.Duration
	// NewTimer fires once on the channel after d.
	NewTimer(d time.Duration) (Timer, <-chan time.Time)
	// NewTicker fires on the channel every d (a tick the reader missed is dropped).
	NewTicker(d time.Duration) (Ticker, <-chan time.Time)
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer controls a timer from NewTimer or AfterFunc, as *time.Timer does.
type Timer interface {
	// Stop prevents the timer from firing; false if it already fired or was stopped.
	Stop() bool
	// Reset makes the timer fire after d; false if it had fired or been stopped.
	Reset(d time.Duration) bool
}

// Ticker controls a ticker from NewTicker, as *time.Ticker does.
type Ticker interface {
	Stop()
	Reset(d time.Duration)
}

// Real is the system's clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Since returns time.Since(t).
func (Real) Since(t time.Time) time.Duration { return time.Since(t) }

// NewTimer returns a time.Timer.
func (Real) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

// NewTicker returns a time.Ticker.
func (Real) NewTicker(d time.Duration) (Ticker, <-chan time.Time) {
	t := time.NewTicker(d)
	return t, t.C
}

// AfterFunc returns time.AfterFunc(d, f).
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Or returns c, or the real clock when c is nil (a zero Options gets the real one).
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
