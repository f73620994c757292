package hw

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3/gpioioctl"
)

// SlotLines are the three GPIO lines of one camera slot.
//
// Presence is high while a camera sits in the slot. Charge high powers the slot's charger.
// Fault high lights the slot's fault LED (the camera is out of service).
type SlotLines struct {
	Presence gpio.PinIn
	Charge   gpio.PinOut
	Fault    gpio.PinOut
}

// Pin finds a GPIO line by name: a name periph registered ("GPIO17"), or, for lines the
// kernel left unnamed, "gpiochipN/LINE" on the GPIO character device. nil if absent.
func Pin(name string) gpio.PinIO {
	if chip, line, ok := strings.Cut(name, "/"); ok && strings.HasPrefix(chip, "gpiochip") {
		n, err := strconv.Atoi(line)
		if err != nil {
			return nil
		}
		for _, c := range gpioioctl.Chips {
			if c.Name() == chip {
				if l := c.ByNumber(n); l != nil {
					return l
				}
			}
		}
		return nil
	}
	if p := gpioreg.ByName(name); p != nil {
		return p
	}
	return nil
}

// LookupLines finds a slot's pins. The error names every missing pin.
func LookupLines(presence, charge, fault string) (SlotLines, error) {
	var l SlotLines
	var missing []string
	find := func(name string) gpio.PinIO {
		p := Pin(name)
		if p == nil {
			missing = append(missing, name)
		}
		return p
	}
	l.Presence, l.Charge, l.Fault = find(presence), find(charge), find(fault)
	if len(missing) > 0 {
		return SlotLines{}, fmt.Errorf("gpio pins not found: %v", missing)
	}
	return l, nil
}

// Init puts the lines in their safe state: presence as an input with edge detection,
// charger off, fault LED off. The presence line's pull is left to the board (external
// resistor), so a restart does not disturb a camera already docked.
func (l SlotLines) Init() error {
	if err := l.Presence.In(gpio.PullNoChange, gpio.BothEdges); err != nil {
		return fmt.Errorf("presence %s: %w", l.Presence, err)
	}
	if err := l.Charge.Out(gpio.Low); err != nil {
		return fmt.Errorf("charge %s: %w", l.Charge, err)
	}
	if err := l.Fault.Out(gpio.Low); err != nil {
		return fmt.Errorf("fault led %s: %w", l.Fault, err)
	}
	return nil
}

// SetCharging switches the slot's charger.
func (l SlotLines) SetCharging(on bool) error {
	if err := l.Charge.Out(gpio.Level(on)); err != nil {
		return fmt.Errorf("charge %s: %w", l.Charge, err)
	}
	return nil
}

// SetFault switches the slot's fault LED.
func (l SlotLines) SetFault(on bool) error {
	if err := l.Fault.Out(gpio.Level(on)); err != nil {
		return fmt.Errorf("fault led %s: %w", l.Fault, err)
	}
	return nil
}

// WatchPresence reports the debounced presence level: once at start, then every change
// that stays stable for debounce. It waits on edges and also polls every poll interval, so
// a missed edge is noticed. The channel closes when ctx ends, at once: the pin's Halt
// interrupts a pending WaitForEdge (periph's gpioioctl line, hwtest.Pin).
func WatchPresence(ctx context.Context, pin gpio.PinIn, debounce, poll time.Duration) <-chan bool {
	out := make(chan bool, 1)
	go func() {
		defer close(out)
		gone := make(chan struct{})
		defer close(gone)
		stop := context.AfterFunc(ctx, func() { haltUntil(pin, gone) })
		defer stop()
		reported := pin.Read() == gpio.High
		select {
		case out <- reported:
		case <-ctx.Done():
			return
		}
		for ctx.Err() == nil {
			pin.WaitForEdge(poll)
			level := pin.Read() == gpio.High
			if level == reported {
				continue
			}
			// Debounce: the new level must hold for the whole window.
			stable := true
			deadline := time.Now().Add(debounce)
			for time.Now().Before(deadline) {
				if pin.WaitForEdge(time.Until(deadline)) && (pin.Read() == gpio.High) != level {
					stable = false
					break
				}
			}
			if !stable || (pin.Read() == gpio.High) != level || ctx.Err() != nil {
				continue
			}
			reported = level
			select {
			case out <- reported:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// haltUntil halts pin's pending WaitForEdge until gone closes. Once is not enough: a Halt
// that lands between the watcher's check of its context and its next WaitForEdge is lost
// (gpioioctl sets a fresh read deadline there), so it is repeated until the watcher is gone.
func haltUntil(pin gpio.PinIn, gone <-chan struct{}) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		_ = pin.Halt()
		select {
		case <-gone:
			return
		case <-t.C:
		}
	}
}
