package hw_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"dock/hw"
	"dock/hw/hwtest"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
)

func TestLookupLinesNamesMissingPins(t *testing.T) {
	p := hwtest.NewPin("HWTEST_PRESENT", 1)
	if err := gpioreg.Register(p); err != nil {
		t.Fatal(err)
	}
	defer gpioreg.Unregister(p.Name())
	_, err := hw.LookupLines("HWTEST_PRESENT", "HWTEST_NOPE_CHARGE", "HWTEST_NOPE_LED")
	if err == nil {
		t.Fatal("missing pins gave no error")
	}
	for _, name := range []string{"HWTEST_NOPE_CHARGE", "HWTEST_NOPE_LED"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestWatchPresenceDebounces(t *testing.T) {
	p := hwtest.NewPin("P", 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := hw.WatchPresence(ctx, p, 30*time.Millisecond, 10*time.Millisecond)
	if v := <-ch; v {
		t.Fatal("initial level reported high")
	}
	// A bounce shorter than the window is not reported.
	p.Drive(gpio.High)
	time.Sleep(5 * time.Millisecond)
	p.Drive(gpio.Low)
	select {
	case v := <-ch:
		t.Fatalf("bounce reported as %v", v)
	case <-time.After(100 * time.Millisecond):
	}
	// A level that holds is reported once.
	p.Drive(gpio.High)
	select {
	case v := <-ch:
		if !v {
			t.Fatal("reported low after a steady high")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("steady high never reported")
	}
}

// A watcher ends when its context does, without waiting out its poll interval: periph's
// Halt interrupts the pending WaitForEdge.
func TestWatchPresenceEndsWithItsContext(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level gpio.Level
	}{{"idle line", gpio.Low}, {"camera seated", gpio.High}} {
		t.Run(tc.name, func(t *testing.T) {
			p := hwtest.NewPin("P", 0)
			p.Drive(tc.level)
			if tc.level == gpio.High {
				<-p.EdgesChan // the edge of the set-up, not one the watcher should see
			}
			ctx, cancel := context.WithCancel(context.Background())
			ch := hw.WatchPresence(ctx, p, time.Millisecond, time.Hour)
			if v := <-ch; v != (tc.level == gpio.High) {
				t.Fatalf("initial level reported %v", v)
			}
			cancel()
			select {
			case v, ok := <-ch:
				if ok {
					t.Fatalf("reported %v after its context ended", v)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the watcher did not end 5 s after its context did (poll is an hour)")
			}
		})
	}
}

func TestSlotLinesDriveOutputs(t *testing.T) {
	pres, chg, led := hwtest.NewPin("A", 0), hwtest.NewPin("B", 1), hwtest.NewPin("C", 2)
	chg.Drive(gpio.High)
	l := hw.SlotLines{Presence: pres, Charge: chg, Fault: led}
	if err := l.Init(); err != nil {
		t.Fatal(err)
	}
	if chg.Level() != gpio.Low {
		t.Error("Init left the charger on")
	}
	if err := l.SetCharging(true); err != nil || chg.Level() != gpio.High {
		t.Errorf("SetCharging(true): err %v level %v", err, chg.Level())
	}
	if err := l.SetFault(true); err != nil || led.Level() != gpio.High {
		t.Errorf("SetFault(true): err %v level %v", err, led.Level())
	}
}
