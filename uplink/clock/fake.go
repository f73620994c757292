package clock

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Fake is a clock that moves only when Advance moves it. Its timers, tickers and
// AfterFuncs fire, in order of their deadlines, as Advance passes them; Waiting tells a
// test when the code under test has armed its timers, so it need not sleep to find out.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer  // armed
	changed chan struct{} // closed and replaced whenever timers change
}

// NewFake returns a fake clock that reads start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

type fakeTimer struct {
	f      *Fake
	when   time.Time
	period time.Duration // tickers
	ch     chan time.Time
	fn     func()
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Since returns the fake time elapsed since t.
func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

// NewTimer returns a timer that fires when the fake time reaches now+d.
func (f *Fake) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := &fakeTimer{f: f, ch: make(chan time.Time, 1)}
	f.arm(t, d)
	return t, t.ch
}

// NewTicker returns a ticker that fires every d of fake time.
func (f *Fake) NewTicker(d time.Duration) (Ticker, <-chan time.Time) {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	t := &fakeTimer{f: f, ch: make(chan time.Time, 1), period: d}
	f.arm(t, d)
	return (*fakeTicker)(t), t.ch
}

// AfterFunc calls fn in its own goroutine when the fake time reaches now+d.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	f.arm(t, d)
	return t
}

// Advance moves the fake time on by d, firing what falls due on the way, each at its
// own deadline.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		sort.SliceStable(f.timers, func(i, j int) bool { return f.timers[i].when.Before(f.timers[j].when) })
		if len(f.timers) == 0 || f.timers[0].when.After(end) {
			break
		}
		t := f.timers[0]
		f.now = t.when
		if t.period > 0 {
			t.when = t.when.Add(t.period)
		} else {
			f.timers = f.timers[1:]
		}
		switch {
		case t.fn != nil:
			go t.fn()
		default:
			select {
			case t.ch <- f.now:
			default: // the reader has not taken the last one: dropped, as time's are
			}
		}
		f.signal()
	}
	f.now = end
}

// Waiting returns how many timers, tickers and AfterFuncs are armed now.
func (f *Fake) Waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// WaitFor blocks until at least n timers, tickers and AfterFuncs are armed, or ctx ends
// (then it returns ctx's error).
func (f *Fake) WaitFor(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		armed, changed := len(f.timers), f.changed
		f.mu.Unlock()
		if armed >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// signal wakes WaitFor; f.mu held.
func (f *Fake) signal() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Fake) arm(t *fakeTimer, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t.when = f.now.Add(d)
	f.timers = append(f.timers, t)
	f.signal()
}

// disarm removes t; f.mu held. It reports whether t was armed.
func (f *Fake) disarm(t *fakeTimer) bool {
	for i, o := range f.timers {
		if o == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			f.signal()
			return true
		}
	}
	return false
}

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.disarm(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool { return t.reset(d, t.period) }

// reset re-arms t to fire after d, then every period if it is a ticker. A fired value not
// yet read is dropped, as Go 1.23's timers do on Reset.
func (t *fakeTimer) reset(d, period time.Duration) bool {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	armed := f.disarm(t)
	t.period = period
	if t.ch != nil {
		select {
		case <-t.ch:
		default:
		}
	}
	t.when = f.now.Add(d)
	f.timers = append(f.timers, t)
	f.signal()
	return armed
}

type fakeTicker fakeTimer

func (t *fakeTicker) Stop() { (*fakeTimer)(t).Stop() }

func (t *fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	(*fakeTimer)(t).reset(d, d)
}
