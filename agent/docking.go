package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"dock/health"
	"dock/hw/camlink"
	"dock/queue"
	"dock/uplink/wire"
)

// docking is one camera's stay in a bay, from presence to removal. It is created when the
// camera is seated and dropped when it leaves: nothing of one camera carries to the next.
type docking struct {
	slot *slot
	a    *Agent
	log  *slog.Logger // the bay's, and this camera's device once it identified itself
	link cameraLink
	id   camlink.Identity
	// drift is the camera clock's drift measured when the dock set it; every offload pass
	// of this docking stamps it on its recordings.
	drift time.Duration
	// failures counts failed battery reads in a row, in link attempts.
	failures int

	mu         sync.Mutex
	officer    string
	battery    *health.Battery
	storage    *health.Storage
	prevBad    *int // the bad blocks of the camera's last docking, if any
	sampled    bool // this docking's history sample was taken
	serviceDue time.Time
	// The last offload's outcome, for the health rules.
	offloaded  offloadOutcome
	storageErr string
}

// run is the docking, from presence until ctx ends (the camera left or the agent stops).
func (d *docking) run(ctx context.Context) {
	s := d.slot
	ev, why := EvPresent, "camera seated"
	if st := s.currentState(); st != Empty && st != Removed {
		ev, why = EvResume, "agent restarted with a camera seated: docking again"
	}
	if err := s.move(ev, why); err != nil {
		d.log.Error("slot", "err", err)
		return
	}
	s.setCharging(true)

	port, ok := d.openPort(ctx)
	if !ok {
		return
	}
	d.link = camlink.NewLink(port, time.Duration(d.a.cfg.LinkTimeout), d.a.cfg.LinkRetries, d.log)
	defer d.link.Close()

	if !d.identify(ctx) {
		return
	}

	// The dock's clock sets the camera's only when it is plausible; a dock that booted
	// without a clock would otherwise stamp evidence with 1970.
	if ok, why := d.a.clockTrusted(); ok {
		var err error
		if d.drift, err = d.link.SetClock(ctx, d.a.now()); err != nil {
			d.log.Warn("clock not set", "err", err)
		}
	} else {
		d.log.Warn("camera clock not set: the dock's clock is unverified", "why", why)
		d.a.raise(-1, d.a.cfg.Dock, health.Verdict{Code: health.ClockUnverified, Detail: why + ": camera clocks are not set and recordings are stamped clock unverified"})
		d.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: d.id.Serial, Detail: "camera clock not set: " + why})
	}
	d.evaluate(ctx, d.drift)

	// Evidence first: a faulty camera is offloaded before it is locked.
	d.offload(ctx)
	if ctx.Err() != nil {
		return
	}
	d.evaluate(ctx, 0)
	d.settle(ctx)

	poll, polls := d.a.timeSource().NewTicker(time.Duration(d.a.cfg.Poll))
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-polls:
		}
		st := s.currentState()
		if st == Charging || st == OutOfService {
			// Anything still on the camera (space ran out, or delete waits for a receipt)?
			d.offload(ctx) // with the drift measured at this docking
			if ctx.Err() != nil {
				return
			}
		}
		d.evaluate(ctx, 0)
		if st == Charging || st == OutOfService {
			d.settle(ctx)
		}
	}
}

// portWait is how long a seated camera's serial port may take to appear: the presence
// contact closes before the camera's USB has enumerated and udev has named the bay's port
// (1-3 s on the carriers, about 5 s on the emulated board's hub, build/vm).
const portWait = 15 * time.Second

// codeSerialPort is a bay whose serial port did not appear for a seated camera, or cannot
// be opened; the fault is the bay's (device <dock>-slotN) and clears when the port opens.
const codeSerialPort health.Code = "serial-port"

// openPort opens the bay's serial port, waiting for it to appear. Past portWait it raises
// the bay's serial-port fault and goes on trying at each poll; false means the camera
// left (or the agent stopped) first.
func (d *docking) openPort(ctx context.Context) (io.ReadWriteCloser, bool) {
	s := d.slot
	clk := d.a.timeSource()
	seated := clk.Now()
	raised := false
	for {
		port, err := camlink.OpenSerial(s.def.Serial, s.def.Baud)
		if err == nil {
			if raised {
				d.log.Info("serial port appeared", "after", clk.Since(seated).Round(time.Millisecond))
			}
			d.a.clearCondition(health.FaultID(s.bay(), codeSerialPort), fmt.Sprintf("dock: slot %d's serial port opened", s.index))
			return port, true
		}
		wait := 250 * time.Millisecond
		if clk.Since(seated) >= portWait {
			if !raised {
				d.a.raise(s.index, s.bay(), health.Verdict{Code: codeSerialPort, Detail: fmt.Sprintf("slot %d: no serial port %s after %s: %v", s.index, s.def.Serial, portWait, err)})
				raised = true
			}
			wait = time.Duration(d.a.cfg.Poll)
		}
		timer, fired := clk.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, false
		case <-fired:
		}
	}
}

// identify asks the camera who it is and records it; false means the docking goes no
// further (the camera does not answer, or the move was not persisted).
func (d *docking) identify(ctx context.Context) bool {
	s := d.slot
	id, err := d.link.Identify(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		garbage, n := d.link.Garbage()
		s.linkLost(fmt.Sprintf("identify: %v; %d bytes of garbage, last: %q", err, n, garbage))
		<-ctx.Done()
		return false
	}
	officer := id.Officer
	if o, ok := d.a.Settings().Officers[id.Serial]; ok {
		officer = o
	}
	dev := d.a.device(id.Serial)
	d.id = id
	d.mu.Lock()
	d.officer = officer
	if n := len(dev.History); n > 0 {
		prev := dev.History[n-1].BadBlocks
		d.prevBad = &prev
	}
	d.mu.Unlock()
	d.log = s.log.With("device", id.Serial)
	s.identified(d)
	if err := s.move(EvIdentified, fmt.Sprintf("%s %s fw %s officer %s", id.Serial, id.Model, id.Firmware, officer)); err != nil {
		d.log.Error("slot", "err", err)
		return false
	}
	return true
}

// evaluate reads battery and storage, applies the health rules, and acts on the verdicts.
func (d *docking) evaluate(ctx context.Context, drift time.Duration) {
	s, device := d.slot, d.id.Serial
	r := health.Reading{ClockDrift: drift, Charging: s.isCharging()}
	d.mu.Lock()
	o := d.offloaded
	r.ReadErrors, r.ReadErrorDetail, r.LeftOnCamera, r.LeftWhy, r.PrevBadBlocks = o.readErrors, o.readWhy, o.leftOn, o.leftWhy, d.prevBad
	r.StorageError = d.storageErr
	d.mu.Unlock()
	settings := d.a.Settings()
	r.Blocked = settings.Blocked[device]
	if b, err := d.link.Battery(ctx); err == nil {
		d.failures = 0
		r.Battery = &health.Battery{ChargePct: b.ChargePct, TempC: float64(b.TempDeciC) / 10, Cycles: b.Cycles, FullMAh: b.FullMAh, DesignMAh: b.DesignMAh, VoltageMV: b.VoltageMV}
	} else if ctx.Err() == nil {
		d.failures += d.a.cfg.LinkRetries + 1
		d.log.Warn("battery read failed", "err", err)
	}
	if st, err := d.link.Storage(ctx); err == nil {
		r.Storage = &health.Storage{Capacity: st.CapacityBytes, Free: st.FreeBytes, BadBlocks: st.BadBlocks, WearPct: st.WearPct, Errors: st.Errors}
	}
	r.LinkFailures = d.failures
	if ctx.Err() != nil {
		return
	}
	now := d.a.now()
	if r.Battery != nil {
		r.ChargeFlatFor = s.chargeFlatFor(r.Battery.ChargePct, now)
	}
	d.mu.Lock()
	if r.Battery != nil {
		d.battery = r.Battery
	}
	if r.Storage != nil {
		d.storage = r.Storage
	}
	sample := !d.sampled && r.Battery != nil && r.Storage != nil
	d.sampled = d.sampled || sample
	d.mu.Unlock()
	if sample {
		d.sample(ctx, r, now, settings)
	}
	verdicts := health.Evaluate(r, settings.Thresholds, d.a.openFaults(device))
	chargeOff := false
	for _, v := range verdicts {
		if v.Code == health.LinkLost {
			garbage, n := d.link.Garbage()
			v.Detail += fmt.Sprintf("; %d bytes of garbage, last: %q", n, garbage)
		}
		d.a.raise(s.index, device, v)
		chargeOff = chargeOff || v.ChargeOff
	}
	// Long-life charging: stop at the ceiling, unless the camera is due out soon.
	ceiling := d.a.cfg.ChargeCeiling
	if settings.DueOut[device] {
		ceiling = 100
	}
	if r.Battery != nil && r.Battery.ChargePct >= ceiling {
		chargeOff = true
	}
	if chargeOff {
		s.setCharging(false)
	}
}

// sample keeps the docking's one history sample, from its first complete reading r, and
// sends it to central with the service date it predicts.
func (d *docking) sample(ctx context.Context, r health.Reading, now time.Time, settings Settings) {
	device := d.id.Serial
	d.a.recordDocking(device, health.Sample{Time: now, HealthPct: r.Battery.HealthPct(), Cycles: r.Battery.Cycles, BadBlocks: r.Storage.BadBlocks, Errors: r.Storage.Errors})
	due, ok := health.PredictCrossing(d.a.device(device).History, settings.Thresholds.MinBatteryHealthPct)
	if ok {
		d.mu.Lock()
		d.serviceDue = due
		d.mu.Unlock()
	}
	if d.a.up == nil {
		return
	}
	hm := wire.HealthMsg{Device: device, Time: now, HealthPct: r.Battery.HealthPct(), Cycles: r.Battery.Cycles, BadBlocks: r.Storage.BadBlocks, Errors: r.Storage.Errors}
	if ok {
		hm.ServiceDue = due
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := d.a.up.Health(pctx, hm); err != nil {
		d.log.Debug("health sample not sent", "err", err)
	}
	cancel()
}

// settle moves the slot to charging, or out of service if the device has open faults:
// lock the camera, light the LED.
func (d *docking) settle(ctx context.Context) {
	s := d.slot
	st := s.currentState()
	open := d.a.openFaults(d.id.Serial)
	if len(open) == 0 {
		_ = s.lines.SetFault(false)
		if st == Offloading {
			if err := s.move(EvOffloaded, "camera empty"); err != nil {
				d.log.Error("slot", "err", err)
			}
		}
		return
	}
	var reason string
	for c := range open {
		reason += string(c) + " "
	}
	if err := d.link.Lock(ctx, reason); err != nil {
		d.log.Warn("camera not locked", "err", err)
	}
	_ = s.lines.SetFault(true)
	if open[health.OverTemp] || open[health.LinkLost] || open[health.UnderTemp] {
		s.setCharging(false)
	}
	if st != OutOfService {
		if err := s.move(EvFaulted, "out of service: "+reason); err != nil {
			d.log.Error("slot", "err", err)
		}
	}
}
