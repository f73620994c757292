package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"dock/board"
	"dock/health"
	"dock/hw"
	"dock/queue"
	"dock/uplink/wire"
)

// slot runs one bay: it watches presence and, while a camera sits there, runs a docking
// (docking.go) through the slot state machine (slotstate.go). Its state, and the camera
// that state is about, are persisted (document slot/<index>).
type slot struct {
	a     *Agent
	index int
	def   board.Slot
	lines hw.SlotLines
	log   *slog.Logger // the bay's, with its slot attribute only: a docking adds its camera

	mu       sync.Mutex
	state    SlotState
	device   string // the camera the state is about; "" when the bay is empty
	charging bool
	// Charge progress: the highest charge seen while charging, and since when.
	chargeTop   int
	chargeSince time.Time
	// docking is the camera docked now, once it identified itself; dropped at removal.
	docking *docking
}

// presencePoll is how often a presence line is read besides its edges: a missed edge costs
// at most this long, and an idle dock stays near zero CPU.
const presencePoll = 2 * time.Second

// slotDoc is a slot's persisted state.
type slotDoc struct {
	State  SlotState `json:"state"`
	Device string    `json:"device,omitempty"`
	Since  time.Time `json:"since"`
}

// move applies ev through the transition function, persists the new state and writes the
// ledger entry in one transaction.
func (s *slot) move(ev SlotEvent, detail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := nextSlot(s.state, ev)
	if err != nil {
		return err
	}
	kind := queue.EvSlot
	switch ev {
	case EvPresent, EvResume:
		kind = queue.EvDocked
	case EvAbsent:
		kind = queue.EvUndocked
	}
	doc := slotDoc{State: next, Device: s.device, Since: s.a.now()}
	if err := s.a.store.PutDoc("slot", fmt.Sprint(s.index), doc, queue.Event{Kind: kind, Slot: s.index, Device: s.device,
		Detail: fmt.Sprintf("%s -> %s: %s", s.state, next, detail)}); err != nil {
		return fmt.Errorf("slot %d: persist %s: %w", s.index, next, err)
	}
	s.log.Info("slot state", "from", s.state, "to", next, "device", s.device, "detail", detail)
	s.state = next
	return nil
}

// currentState returns the bay's state now.
func (s *slot) currentState() SlotState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *slot) setCharging(on bool) {
	if err := s.lines.SetCharging(on); err != nil {
		s.log.Error("charger", "err", err)
		return
	}
	s.mu.Lock()
	if on && !s.charging {
		s.chargeTop, s.chargeSince = -1, s.a.now()
	}
	s.charging = on
	s.mu.Unlock()
}

// isCharging reports whether the bay's charger is on.
func (s *slot) isCharging() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.charging
}

// chargeFlatFor takes a battery reading of pct at now and, while charging, returns how
// long the charge has not risen above its highest (0 when not charging).
func (s *slot) chargeFlatFor(pct int, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.charging {
		return 0
	}
	if pct > s.chargeTop {
		s.chargeTop, s.chargeSince = pct, now
	}
	return now.Sub(s.chargeSince)
}

func (s *slot) run(ctx context.Context) {
	presence := hw.WatchPresence(ctx, s.lines.Presence, time.Duration(s.a.cfg.Debounce), presencePoll)
	type running struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var cur *running
	stop := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	defer stop()
	for present := range presence {
		switch {
		case present && cur == nil:
			sctx, cancel := context.WithCancel(ctx)
			cur = &running{cancel: cancel, done: make(chan struct{})}
			go func(r *running) { defer close(r.done); s.dock(sctx) }(cur)
		case !present:
			// Also a removal missed while the agent was down.
			stop()
			s.removed()
		}
	}
}

// dock runs one docking, from presence to removal.
func (s *slot) dock(ctx context.Context) {
	d := &docking{slot: s, a: s.a, log: s.log}
	d.run(ctx)
}

// removed resets the bay after the camera left, dropping its docking.
func (s *slot) removed() {
	s.setCharging(false)
	_ = s.lines.SetFault(false)
	if s.currentState() == Empty {
		return
	}
	if err := s.move(EvAbsent, "camera removed"); err != nil {
		s.log.Error("slot", "err", err)
	}
	if err := s.move(EvReset, "bay ready"); err != nil {
		s.log.Error("slot", "err", err)
	}
	s.mu.Lock()
	s.device, s.docking = "", nil
	s.mu.Unlock()
}

// identified records the camera the bay now holds, and its docking.
func (s *slot) identified(d *docking) {
	s.mu.Lock()
	s.device, s.docking = d.id.Serial, d
	s.mu.Unlock()
}

// bay names the bay itself as a device, for faults of the bay or of a camera that has not
// said who it is.
func (s *slot) bay() string { return s.a.cfg.Dock + "-slot" + fmt.Sprint(s.index) }

// linkLost takes a camera that does not answer out of service.
func (s *slot) linkLost(detail string) {
	s.setCharging(false)
	device := s.bay()
	s.mu.Lock()
	if s.device != "" {
		device = s.device
	}
	s.mu.Unlock()
	s.a.raise(s.index, device, health.Verdict{Code: health.LinkLost, Detail: detail, ChargeOff: true, OutOfService: true})
	_ = s.lines.SetFault(true)
	if err := s.move(EvFaulted, "camera does not answer"); err != nil {
		s.log.Error("slot", "err", err)
	}
}

func (s *slot) telemetry() wire.SlotTelemetry {
	s.mu.Lock()
	t := wire.SlotTelemetry{Slot: s.index, State: string(s.state), Device: s.device, Charging: s.charging}
	d := s.docking
	s.mu.Unlock()
	if d != nil {
		d.mu.Lock()
		t.Officer = d.officer
		if b := d.battery; b != nil {
			t.Battery = &wire.Battery{ChargePct: b.ChargePct, HealthPct: b.HealthPct(), TempC: b.TempC, Cycles: b.Cycles, VoltageMV: b.VoltageMV}
			lasts := health.LastsShift(*b, 12*time.Hour, s.a.cfg.ShiftDrawMAh)
			t.LastsShift = &lasts
		}
		t.ServiceDue = d.serviceDue
		if st := d.storage; st != nil {
			t.Storage = &wire.Storage{Capacity: st.Capacity, Free: st.Free, BadBlocks: st.BadBlocks, WearPct: st.WearPct, Errors: st.Errors}
		}
		d.mu.Unlock()
	}
	if t.Device != "" {
		for c := range s.a.openFaults(t.Device) {
			t.Faults = append(t.Faults, string(c))
		}
	}
	return t
}

func jsonMarshal(v any) json.RawMessage { b, _ := json.Marshal(v); return b }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
