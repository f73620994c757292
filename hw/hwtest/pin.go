// Package hwtest holds hand-written fakes of the hw lines for tests and the simulator.
// Fakes only: nothing here touches real hardware.
package hwtest

import (
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// Pin is a gpiotest.Pin whose level can be driven from outside, with edges delivered
// to WaitForEdge the way a real line's interrupt would, and a Halt that interrupts a
// pending WaitForEdge as periph's gpioioctl line does (and, like it, does nothing to a
// wait that begins after it).
type Pin struct {
	gpiotest.Pin

	haltMu  sync.Mutex
	waiting chan struct{} // closed by Halt; set while a WaitForEdge is pending
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

// WaitForEdge waits for a driven edge for up to timeout (-1: forever); false on timeout
// or when Halt interrupts it.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	halted := make(chan struct{})
	p.haltMu.Lock()
	p.waiting = halted
	p.haltMu.Unlock()
	defer func() {
		p.haltMu.Lock()
		if p.waiting == halted {
			p.waiting = nil
		}
		p.haltMu.Unlock()
	}()
	var expired <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case l := <-p.EdgesChan:
		_ = p.Out(l)
		return true
	case <-expired:
		return false
	case <-halted:
		return false
	}
}

// Halt interrupts a pending WaitForEdge.
func (p *Pin) Halt() error {
	p.haltMu.Lock()
	defer p.haltMu.Unlock()
	if p.waiting != nil {
		close(p.waiting)
		p.waiting = nil
	}
	return nil
}
