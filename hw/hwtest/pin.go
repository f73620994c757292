// Package hwtest holds hand-written fakes of the hw lines for tests and the simulator.
// Fakes only: nothing here touches real hardware.
package hwtest

import (
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// Pin is a gpiotest.Pin whose level can be driven from outside, with edges delivered
// to WaitForEdge the way a real line's interrupt would.
type Pin struct {
	gpiotest.Pin
}

// NewPin returns a fake pin named name, low, with room for queued edges.
func NewPin(name string, num int) *Pin {
	return &Pin{Pin: gpiotest.Pin{N: name, Num: num, L: gpio.Low, EdgesChan: make(chan gpio.Level, 64)}}
}

// Drive sets the line's level as the outside world would and queues an edge.
func (p *Pin) Drive(l gpio.Level) {
	p.Lock()
	changed := p.L != l
	p.L = l
	p.Unlock()
	if !changed {
		return
	}
	select {
	case p.EdgesChan <- l:
	default: // edge queue full: level is still readable, the watcher polls
	}
}

// Level returns the line's current level (for outputs: what the agent drove).
func (p *Pin) Level() gpio.Level {
	p.Lock()
	defer p.Unlock()
	return p.L
}
