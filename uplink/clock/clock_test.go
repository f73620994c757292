package clock

import (
	"context"
	"testing"
	"time"
)

var start = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

// fired reports what ch delivered without waiting.
func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-ch:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimersFireAtTheirDeadlines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		after   time.Duration
		advance []time.Duration
		want    bool
	}{
		{"not yet", 10 * time.Second, []time.Duration{9 * time.Second}, false},
		{"exactly due", 10 * time.Second, []time.Duration{10 * time.Second}, true},
		{"in steps", 10 * time.Second, []time.Duration{4 * time.Second, 4 * time.Second, 4 * time.Second}, true},
		{"zero", 0, []time.Duration{0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(start)
			_, ch := f.NewTimer(tc.after)
			for _, d := range tc.advance {
				f.Advance(d)
			}
			v, ok := fired(ch)
			if ok != tc.want {
				t.Fatalf("fired %v, want %v", ok, tc.want)
			}
			if ok && !v.Equal(start.Add(tc.after)) {
				t.Errorf("fired with %v, want its deadline %v", v, start.Add(tc.after))
			}
		})
	}
}

func TestFakeStopResetTicker(t *testing.T) {
	f := NewFake(start)
	tm, ch := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Error("Stop of an armed timer returned false")
	}
	f.Advance(time.Hour)
	if _, ok := fired(ch); ok {
		t.Error("a stopped timer fired")
	}
	if tm.Reset(time.Minute) {
		t.Error("Reset of a stopped timer returned true")
	}
	f.Advance(59 * time.Second)
	if _, ok := fired(ch); ok {
		t.Error("a reset timer fired before its new deadline")
	}
	f.Advance(time.Second)
	if _, ok := fired(ch); !ok {
		t.Error("a reset timer did not fire at its new deadline")
	}

	tk, tch := f.NewTicker(10 * time.Second)
	var ticks []time.Time
	for range 3 {
		f.Advance(10 * time.Second)
		if v, ok := fired(tch); ok {
			ticks = append(ticks, v)
		}
	}
	if len(ticks) != 3 || ticks[2].Sub(ticks[0]) != 20*time.Second {
		t.Errorf("ticks %v, want 3 ten seconds apart", ticks)
	}
	tk.Reset(time.Minute)
	f.Advance(30 * time.Second)
	if _, ok := fired(tch); ok {
		t.Error("a ticker reset to a minute ticked after 30 s")
	}
	tk.Stop()
	f.Advance(time.Hour)
	if _, ok := fired(tch); ok {
		t.Error("a stopped ticker ticked")
	}
	if n := f.Waiting(); n != 0 {
		t.Errorf("%d timers armed after all were stopped or fired", n)
	}
}

func TestFakeAfterFuncAndWaitFor(t *testing.T) {
	f := NewFake(start)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan time.Time, 1)
	go func() {
		f.AfterFunc(time.Minute, func() { done <- f.Now() })
	}()
	if err := f.WaitFor(ctx, 1); err != nil {
		t.Fatalf("the AfterFunc was never armed: %v", err)
	}
	f.Advance(2 * time.Minute)
	select {
	case at := <-done:
		if at.Before(start.Add(time.Minute)) {
			t.Errorf("ran at %v, before its deadline", at)
		}
	case <-ctx.Done():
		t.Fatal("the AfterFunc never ran")
	}
	if got := f.Since(start); got != 2*time.Minute {
		t.Errorf("Since(start) = %v, want 2m", got)
	}
}
