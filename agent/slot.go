package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"

	"dock/board"
	"dock/health"
	"dock/hw"
	"dock/hw/camlink"
	"dock/queue"
	"dock/uplink/wire"
)

// slot runs one bay: it watches presence and, while a camera sits there, drives a docking
// session through the slot state machine.
type slot struct {
	a     *Agent
	index int
	def   board.Slot
	lines hw.SlotLines
	log   *slog.Logger
	// baseLog is log without a docking's attributes.
	baseLog *slog.Logger

	mu       sync.Mutex
	state    SlotState
	device   string
	officer  string
	battery  *health.Battery
	storage  *health.Storage
	charging bool
	// Charge progress: the highest charge seen while charging, and since when.
	chargeTop   int
	chargeSince time.Time
	// This docking's offload outcome, for the health rules.
	readErrors int
	readWhy    string
	storageErr string
	leftOn     int
	leftWhy    string
	prevBad    *int
	sampled    bool
	serviceDue time.Time
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
			go func(r *running) { defer close(r.done); s.session(sctx) }(cur)
		case !present:
			// Also a removal missed while the agent was down.
			stop()
			s.removed()
		}
	}
}

// removed resets the bay after the camera left.
func (s *slot) removed() {
	s.setCharging(false)
	_ = s.lines.SetFault(false)
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if st == Empty {
		return
	}
	if err := s.move(EvAbsent, "camera removed"); err != nil {
		s.log.Error("slot", "err", err)
	}
	if err := s.move(EvReset, "bay ready"); err != nil {
		s.log.Error("slot", "err", err)
	}
	s.mu.Lock()
	s.device, s.officer, s.battery, s.storage = "", "", nil, nil
	s.readErrors, s.readWhy, s.leftOn, s.leftWhy, s.prevBad, s.sampled, s.serviceDue = 0, "", 0, "", nil, false, time.Time{}
	s.storageErr = ""
	s.mu.Unlock()
}

// session is one docking, from presence to removal.
func (s *slot) session(ctx context.Context) {
	s.mu.Lock()
	ev, why := EvPresent, "camera seated"
	if s.state != Empty && s.state != Removed {
		ev, why = EvResume, "agent restarted with a camera seated: docking again"
	}
	s.mu.Unlock()
	if err := s.move(ev, why); err != nil {
		s.log.Error("slot", "err", err)
		return
	}
	s.setCharging(true)

	port, err := camlink.OpenSerial(s.def.Serial, s.def.Baud)
	if err != nil {
		s.a.raise(s.index, s.a.cfg.Dock, health.Verdict{Code: "serial-port", Detail: fmt.Sprintf("slot %d: %v", s.index, err)})
		<-ctx.Done()
		return
	}
	link := camlink.NewLink(port, time.Duration(s.a.cfg.LinkTimeout), s.a.cfg.LinkRetries, s.log)
	defer link.Close()

	id, err := link.Identify(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		garbage, n := link.Garbage()
		s.linkLost(fmt.Sprintf("identify: %v; %d bytes of garbage, last: %q", err, n, garbage))
		<-ctx.Done()
		return
	}
	settings := s.a.Settings()
	officer := id.Officer
	if o, ok := settings.Officers[id.Serial]; ok {
		officer = o
	}
	dev := s.a.device(id.Serial)
	s.mu.Lock()
	s.device, s.officer = id.Serial, officer
	if n := len(dev.History); n > 0 {
		prev := dev.History[n-1].BadBlocks
		s.prevBad = &prev
	}
	s.mu.Unlock()
	s.log = s.baseLog.With("device", id.Serial) // this docking's camera, not every one since start
	if err := s.move(EvIdentified, fmt.Sprintf("%s %s fw %s officer %s", id.Serial, id.Model, id.Firmware, officer)); err != nil {
		s.log.Error("slot", "err", err)
		return
	}

	// The dock's clock sets the camera's only when it is plausible; a dock that booted
	// without a clock would otherwise stamp evidence with 1970.
	var drift time.Duration
	if ok, why := s.a.clockTrusted(); ok {
		if drift, err = link.SetClock(ctx, s.a.now()); err != nil {
			s.log.Warn("clock not set", "err", err)
		}
	} else {
		s.log.Warn("camera clock not set: the dock's clock is unverified", "why", why)
		s.a.raise(-1, s.a.cfg.Dock, health.Verdict{Code: health.ClockUnverified, Detail: why + ": camera clocks are not set and recordings are stamped clock unverified"})
		s.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: id.Serial, Detail: "camera clock not set: " + why})
	}
	failures := 0
	s.evaluate(ctx, link, &failures, drift)

	// Evidence first: a faulty camera is offloaded before it is locked.
	s.offload(ctx, link, id, officer, drift)
	if ctx.Err() != nil {
		return
	}
	s.evaluate(ctx, link, &failures, 0)
	s.settle(ctx, link)

	poll := time.NewTicker(time.Duration(s.a.cfg.Poll))
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		s.mu.Lock()
		st := s.state
		s.mu.Unlock()
		if st == Charging || st == OutOfService {
			// Anything still on the camera (space ran out, or delete waits for a receipt)?
			s.offload(ctx, link, id, officer, drift) // the drift measured at this docking
			if ctx.Err() != nil {
				return
			}
		}
		s.evaluate(ctx, link, &failures, 0)
		if st == Charging || st == OutOfService {
			s.settle(ctx, link)
		}
	}
}

// evaluate reads battery and storage, applies the health rules, and acts on the verdicts.
func (s *slot) evaluate(ctx context.Context, link *camlink.Link, failures *int, drift time.Duration) {
	r := health.Reading{ClockDrift: drift}
	s.mu.Lock()
	device := s.device
	r.Charging = s.charging
	r.ReadErrors, r.ReadErrorDetail, r.LeftOnCamera, r.LeftWhy, r.PrevBadBlocks = s.readErrors, s.readWhy, s.leftOn, s.leftWhy, s.prevBad
	r.StorageError = s.storageErr
	s.mu.Unlock()
	settings := s.a.Settings()
	r.Blocked = settings.Blocked[device]
	if b, err := link.Battery(ctx); err == nil {
		*failures = 0
		r.Battery = &health.Battery{ChargePct: b.ChargePct, TempC: float64(b.TempDeciC) / 10, Cycles: b.Cycles, FullMAh: b.FullMAh, DesignMAh: b.DesignMAh, VoltageMV: b.VoltageMV}
	} else if ctx.Err() == nil {
		*failures += s.a.cfg.LinkRetries + 1
		s.log.Warn("battery read failed", "err", err)
	}
	if st, err := link.Storage(ctx); err == nil {
		r.Storage = &health.Storage{Capacity: st.CapacityBytes, Free: st.FreeBytes, BadBlocks: st.BadBlocks, WearPct: st.WearPct, Errors: st.Errors}
	}
	r.LinkFailures = *failures
	if ctx.Err() != nil {
		return
	}
	now := s.a.now()
	s.mu.Lock()
	if r.Battery != nil {
		s.battery = r.Battery
		if s.charging {
			if r.Battery.ChargePct > s.chargeTop {
				s.chargeTop, s.chargeSince = r.Battery.ChargePct, now
			}
			r.ChargeFlatFor = now.Sub(s.chargeSince)
		}
	}
	if r.Storage != nil {
		s.storage = r.Storage
	}
	sample := !s.sampled && r.Battery != nil && r.Storage != nil
	s.sampled = s.sampled || sample
	s.mu.Unlock()
	if sample {
		// One history sample per docking, from its first complete reading.
		s.a.recordDocking(device, health.Sample{Time: now, HealthPct: r.Battery.HealthPct(), Cycles: r.Battery.Cycles, BadBlocks: r.Storage.BadBlocks, Errors: r.Storage.Errors})
		due, ok := health.PredictCrossing(s.a.device(device).History, settings.Thresholds.MinBatteryHealthPct)
		if ok {
			s.mu.Lock()
			s.serviceDue = due
			s.mu.Unlock()
		}
		if s.a.up != nil {
			hm := wire.HealthMsg{Device: device, Time: now, HealthPct: r.Battery.HealthPct(), Cycles: r.Battery.Cycles, BadBlocks: r.Storage.BadBlocks, Errors: r.Storage.Errors}
			if ok {
				hm.ServiceDue = due
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.a.up.Health(pctx, hm); err != nil {
				s.log.Debug("health sample not sent", "err", err)
			}
			cancel()
		}
	}
	verdicts := health.Evaluate(r, settings.Thresholds, s.a.openFaults(device))
	chargeOff := false
	for _, v := range verdicts {
		if v.Code == health.LinkLost {
			garbage, n := link.Garbage()
			v.Detail += fmt.Sprintf("; %d bytes of garbage, last: %q", n, garbage)
		}
		s.a.raise(s.index, device, v)
		chargeOff = chargeOff || v.ChargeOff
	}
	// Long-life charging: stop at the ceiling, unless the camera is due out soon.
	ceiling := s.a.cfg.ChargeCeiling
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

// linkLost takes a camera that does not answer out of service.
func (s *slot) linkLost(detail string) {
	s.setCharging(false)
	device := s.a.cfg.Dock + "-slot" + fmt.Sprint(s.index)
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

// settle moves the slot to charging, or out of service if the device has open faults:
// lock the camera, light the LED.
func (s *slot) settle(ctx context.Context, link *camlink.Link) {
	s.mu.Lock()
	device, st := s.device, s.state
	s.mu.Unlock()
	open := s.a.openFaults(device)
	if len(open) == 0 {
		_ = s.lines.SetFault(false)
		if st == Offloading {
			if err := s.move(EvOffloaded, "camera empty"); err != nil {
				s.log.Error("slot", "err", err)
			}
		}
		return
	}
	var reason string
	for c := range open {
		reason += string(c) + " "
	}
	if err := link.Lock(ctx, reason); err != nil {
		s.log.Warn("camera not locked", "err", err)
	}
	_ = s.lines.SetFault(true)
	if open[health.OverTemp] || open[health.LinkLost] || open[health.UnderTemp] {
		s.setCharging(false)
	}
	if st != OutOfService {
		if err := s.move(EvFaulted, "out of service: "+reason); err != nil {
			s.log.Error("slot", "err", err)
		}
	}
}

// offload copies every recording off the camera into the spool and frees the camera's
// copy once the dock's is durable (or, by policy, verified by central).
func (s *slot) offload(ctx context.Context, link *camlink.Link, id camlink.Identity, officer string, drift time.Duration) {
	settings := s.a.Settings()
	storageFailed := func(what string, err error) {
		if ctx.Err() != nil {
			return
		}
		s.log.Error("camera storage unreadable", "step", what, "err", err)
		s.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: id.Serial, Detail: what + ": " + err.Error()})
		s.mu.Lock()
		s.storageErr = what + ": " + err.Error()
		s.mu.Unlock()
	}
	if err := unlockStorage(ctx, link, s.a.cfg, id.Serial); err != nil {
		storageFailed("unlock storage", err)
		return
	}
	listing, err := link.List(ctx, camlink.ListLimits{})
	if err != nil {
		storageFailed("list recordings", err)
		return
	}
	files := listing.Files
	s.mu.Lock()
	s.storageErr = ""
	s.mu.Unlock()
	s.refusedEntries(id.Serial, listing)
	readErrors, kept, left := 0, 0, 0
	var lastErr, lastReadErr error
	defer func() {
		if ctx.Err() != nil {
			return
		}
		why, readWhy := "", ""
		if readErrors > 0 {
			readWhy = lastReadErr.Error()
		}
		if refused := left - kept - readErrors; refused > 0 {
			why = fmt.Sprintf("the camera refused to delete %d: %v", refused, lastErr)
		}
		s.mu.Lock()
		s.readErrors, s.readWhy, s.leftOn, s.leftWhy = readErrors, readWhy, left+len(listing.Refused), why
		s.mu.Unlock()
	}()
	if len(files) == 0 {
		return
	}
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if st != Offloading {
		if err := s.move(EvOffload, fmt.Sprintf("%d recordings on camera", len(files))); err != nil {
			s.log.Error("slot", "err", err)
			return
		}
	}
	// The camera's copies are deleted by a goroutine of their own, so the next recording is
	// read while the last one is freed over the serial link; all are answered before the
	// tally below is kept.
	frees := make(chan freeing, len(files))
	freed := make(chan freeTally, 1)
	go func() {
		var t freeTally
		for fr := range frees {
			// The ledger says what is about to happen before it happens: a delete that
			// cannot be recorded does not take place, and the camera keeps its copy.
			if err := s.a.note(queue.Event{Kind: queue.EvCameraFreeing, Slot: s.index, Device: id.Serial, Recording: fr.rid,
				Detail: fmt.Sprintf("deleting %s from the camera: the dock's copy (%s) holds sha256 %s, the bytes read from the camera in this docking", fr.name, fr.state, fr.sha)}); err != nil {
				t.left, t.lastErr = t.left+1, err
				continue
			}
			if err := link.Delete(ctx, fr.name, fr.size); err != nil {
				s.log.Warn("camera copy not freed", "recording", fr.name, "err", err)
				t.left, t.lastErr = t.left+1, err
				s.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: id.Serial, Recording: fr.rid, Detail: "camera refused to delete " + fr.name + ": " + err.Error()})
				continue
			}
			s.a.note(queue.Event{Kind: queue.EvCameraFree, Slot: s.index, Device: id.Serial, Recording: fr.rid, Detail: "camera copy deleted; dock copy " + string(fr.state)})
		}
		freed <- t
	}()
	defer func() {
		close(frees)
		t := <-freed
		left += t.left
		if t.lastErr != nil {
			lastErr = t.lastErr
		}
	}()
	copies, stopCopies := s.copyAhead(ctx, files, id, officer, drift, settings)
	defer stopCopies()
	for i, f := range files {
		if ctx.Err() != nil {
			return
		}
		c := <-copies[i]
		rid, rec, err := c.rid, c.rec, c.err
		if errors.Is(err, errSpoolFull) {
			s.log.Warn("offload paused: spool at its reserve; footage stays on the camera")
			left, kept = len(files), len(files) // the dock's choice, under the spool-full fault
			return
		}
		if err != nil {
			if ctx.Err() == nil && s.lines.Presence.Read() == gpio.Low {
				return // pulled out: the session ends, nothing is the camera's fault
			}
			if errors.Is(err, hw.ErrRefusedPath) {
				// A link or a file that is not regular: refused like a bad listing entry.
				s.refusedEntries(id.Serial, camlink.Listing{Refused: []camlink.Refused{{Name: f.Name, Why: err.Error()}}})
				left, kept = left+1, kept+1 // kept: the dock's choice, under its own fault
				continue
			}
			if ctx.Err() == nil {
				s.log.Error("offload", "recording", f.Name, "err", err)
				readErrors, lastReadErr = readErrors+1, err
				left++
			}
			continue
		}
		// The dock's copy is durable (file, directory and the synced Badger commit).
		if settings.DeleteAfterReceipt && rec.State != queue.Verified && rec.State != queue.Freed {
			left, kept = left+1, kept+1
			continue // policy: the camera keeps it until central's receipt
		}
		frees <- freeing{name: f.Name, size: f.Size, rid: rid, sha: rec.SHA256, state: rec.State}
	}
}

// refusedEntries reports the entries of a camera's listing that failed the dock's
// checks: each is written to the ledger and named in the camera's storage-entry-refused
// fault, an advisory one: the camera stays in service and its other recordings are
// offloaded. The refused entries stay on the camera.
func (s *slot) refusedEntries(device string, listing camlink.Listing) {
	var detail []string
	for _, r := range listing.Refused {
		why := fmt.Sprintf("listing entry %q refused, left on the camera: %s", r.Name, r.Why)
		s.log.Warn("camera listing entry refused", "entry", fmt.Sprintf("%q", r.Name), "why", r.Why)
		s.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: device, Detail: why})
		if len(detail) < 10 {
			detail = append(detail, fmt.Sprintf("%q: %s", r.Name, r.Why))
		}
	}
	if listing.Truncated != "" {
		s.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: device, Detail: "listing cut short, the rest stays on the camera for the next docking: " + listing.Truncated})
	}
	if len(listing.Refused) == 0 {
		return
	}
	msg := fmt.Sprintf("%d entries of the camera's listing refused and left on it: %s", len(listing.Refused), strings.Join(detail, "; "))
	if len(listing.Refused) > len(detail) {
		msg += fmt.Sprintf("; and %d more (see the ledger)", len(listing.Refused)-len(detail))
	}
	s.a.raise(s.index, device, health.Verdict{Code: health.EntryRefused, Detail: msg})
}

// freeing is a camera copy to delete: the dock's copy of it is durable.
type freeing struct {
	name  string
	size  int64
	rid   string
	sha   string
	state queue.State
}

// freeTally is what the deletes of one offload left on the camera.
type freeTally struct {
	left    int
	lastErr error
}

// copied is the outcome of one recording in an offload: the dock's copy, or why none.
type copied struct {
	rid string
	rec queue.Recording
	err error
}

// copyAhead copies the camera's files into the spool in order, each started as soon as the
// camera has delivered the last byte of the one before, so that one's commit (fsyncs and
// the Badger transaction) overlaps the next read instead of leaving the camera idle. Each
// file's outcome comes on its own channel; stop cancels what is left and waits for it.
func (s *slot) copyAhead(ctx context.Context, files []camlink.FileEntry, id camlink.Identity, officer string, drift time.Duration, settings Settings) (outcomes []chan copied, stop func()) {
	cctx, cancel := context.WithCancel(ctx)
	outcomes = make([]chan copied, len(files))
	for i := range outcomes {
		outcomes[i] = make(chan copied, 1)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, f := range files {
			rid := queue.RecordingID(id.Serial, f.Name, f.Start, f.Size)
			if cctx.Err() != nil {
				outcomes[i] <- copied{rid: rid, err: cctx.Err()}
				continue
			}
			if rec, err := s.a.store.Get(rid); err == nil && settings.DeleteAfterReceipt && rec.State != queue.Verified && rec.State != queue.Freed {
				// Policy keeps the camera's copy until central's receipt: nothing to read
				// yet. The bytes are compared when the copy may go.
				outcomes[i] <- copied{rid, rec, nil}
				continue
			}
			read := make(chan struct{})
			var once sync.Once
			readAll := func() { once.Do(func() { close(read) }) }
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec, err := s.copyOrCompare(cctx, f, rid, id, officer, drift, settings, readAll)
				readAll()
				outcomes[i] <- copied{rec.ID, rec, err}
			}()
			<-read
		}
	}()
	return outcomes, func() { cancel(); wg.Wait() }
}

// errSpoolFull means the spool would fall under its reserve.
var errSpoolFull = errors.New("spool full")

// copyOrCompare takes one camera file into the dock's custody: it copies it into the
// spool, or, when its id is already held, reads it and compares its bytes with the dock's
// copy. Other bytes under a held id (a name reused after a format, a file the id cannot
// tell apart) are copied again under their variant id. A nil error means the dock
// durably holds a copy whose SHA-256 equals this camera file's bytes as read now.
func (s *slot) copyOrCompare(ctx context.Context, f camlink.FileEntry, rid string, id camlink.Identity, officer string, drift time.Duration, settings Settings, readAll func()) (queue.Recording, error) {
	rec, err := s.copy(ctx, f, rid, id, officer, drift, settings, readAll)
	var conflict *queue.ConflictError
	if !errors.As(err, &conflict) {
		return rec, err
	}
	variant := queue.VariantID(rid, conflict.SHA256)
	s.log.Warn("camera file differs from the dock's copy under its id: copying it under its own", "recording", rid, "variant", variant, "camera_sha256", conflict.SHA256, "dock_sha256", conflict.Held)
	if err := s.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: id.Serial, Recording: rid, Detail: fmt.Sprintf("%s on the camera has sha256 %s, the dock's copy under this id %s: filed as %s", f.Name, conflict.SHA256, conflict.Held, variant)}); err != nil {
		return rec, err
	}
	// Read twice, two different answers: the camera's file is not settled, and a copy of
	// the second read is not committed (nor kept for the next poll to add another).
	sameAsFirstRead := func(r queue.Recording) error {
		if r.SHA256 != conflict.SHA256 {
			return fmt.Errorf("%s: read as sha256 %s, then %s: %w", f.Name, conflict.SHA256, r.SHA256, errChangedDuringCopy)
		}
		return nil
	}
	return s.copy(ctx, f, variant, id, officer, drift, settings, func() {}, sameAsFirstRead)
}

// copy copies one recording into the spool, or compares it with the dock's copy when its
// id is already held (then it writes nothing). readAll is called once the camera has
// delivered its last byte.
func (s *slot) copy(ctx context.Context, f camlink.FileEntry, rid string, id camlink.Identity, officer string, drift time.Duration, settings Settings, readAll func(), beforeCommit ...func(queue.Recording) error) (queue.Recording, error) {
	if _, err := s.a.store.Get(rid); errors.Is(err, queue.ErrNotFound) {
		free, err := s.a.store.Spool().FreeBytes()
		if err != nil {
			return queue.Recording{}, err
		}
		if int64(free)-f.Size-4096 < s.a.cfg.SpoolReserve {
			s.a.raise(-1, s.a.cfg.Dock, health.Verdict{Code: "spool-full", Detail: fmt.Sprintf("%d bytes free, reserve %d, next recording %d: offload paused, footage stays on cameras", free, s.a.cfg.SpoolReserve, f.Size)})
			return queue.Recording{}, fmt.Errorf("%s: %w", f.Name, errSpoolFull)
		}
		s.a.spaceReturned()
	}
	// Opened strictly beneath the mount, never through a link, regular files only: a
	// camera reaches nothing beyond its own files.
	path := filepath.Join(s.def.Mount, filepath.FromSlash(f.Name))
	open := s.a.board.Open
	if open == nil {
		open = func(string) (fs.File, error) { return hw.OpenBeneath(s.def.Mount, f.Name) }
	}
	src, err := open(path)
	if err != nil {
		s.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: id.Serial, Recording: rid, Detail: fmt.Sprintf("open %q on camera: %v", f.Name, err)})
		return queue.Recording{}, fmt.Errorf("open %s: %w", f.Name, err)
	}
	defer src.Close()
	before, _ := src.Stat()
	rec := queue.Recording{
		ID: rid, Name: f.Name, Device: id.Serial, Officer: officer, Team: settings.Team,
		Start: f.Start, End: f.End, Size: f.Size, Class: queue.Patrol, Hold: f.Mark, ClockDrift: drift,
	}
	if ok, _ := s.a.clockTrusted(); !ok {
		rec.ClockUnverified = true
	}
	// The file must not have moved while it was read: a copy that may be of neither version
	// is discarded before it is committed (so no upload can take it), and the camera
	// keeps the file for the next pass.
	unchanged := func(queue.Recording) error {
		if changed(before, path) {
			return fmt.Errorf("%s: %w", f.Name, errChangedDuringCopy)
		}
		return nil
	}
	rec, held, err := s.guardedOffload(ctx, rec, src, id.Serial, readAll, append(beforeCommit, unchanged)...)
	if err == nil && changed(before, path) {
		// Changed after the dock's copy was made (or compared): that copy holds what was
		// read, but the camera's file is no longer it, so it is not deleted.
		err = fmt.Errorf("%s: %w", f.Name, errChangedDuringCopy)
	}
	var conflict *queue.ConflictError
	if err != nil && !errors.As(err, &conflict) {
		if ctx.Err() == nil {
			s.a.note(queue.Event{Kind: queue.EvInput, Slot: s.index, Device: id.Serial, Recording: rid, Detail: "copy failed, camera keeps it: " + err.Error()})
		}
		return rec, err
	}
	if err != nil || held {
		return rec, err
	}
	s.a.metrics.offloaded.Inc()
	s.a.metrics.offloadBytes.Add(float64(rec.Size))
	s.log.Info("recording offloaded", "recording", rid, "bytes", rec.Size, "sha256", rec.SHA256, "hold", rec.Hold)
	s.a.kick()
	return rec, nil
}

// errChangedDuringCopy means the camera's file changed size or time while it was copied.
var errChangedDuringCopy = errors.New("file changed on the camera during copy")

// changed reports whether the file at path is no longer what before described.
func changed(before os.FileInfo, path string) bool {
	after, err := os.Lstat(path)
	if before == nil || err != nil {
		return before != nil || err == nil
	}
	return after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime())
}

// errCopyStalled means the camera's storage stopped delivering bytes mid-copy.
var errCopyStalled = errors.New("camera storage stalled mid-copy")

// progressReader counts bytes read, for the copy watchdog, and calls readAll once the
// expected size has been read.
type progressReader struct {
	r       io.Reader
	n       atomic.Int64
	size    int64
	readAll func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.n.Add(int64(n)) >= p.size || err != nil {
		p.readAll()
	}
	return n, err
}

// guardedOffload copies (or compares, see queue.Store.Offload) with a progress watchdog:
// storage that stops delivering bytes for the stall timeout fails the copy (the camera
// keeps the recording) instead of holding the bay forever. A read stuck in the kernel is
// abandoned to its goroutine.
func (s *slot) guardedOffload(ctx context.Context, rec queue.Recording, src fs.File, device string, readAll func(), beforeCommit ...func(queue.Recording) error) (queue.Recording, bool, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var delivered atomic.Bool // the camera has delivered every byte
	pr := &progressReader{r: src, size: rec.Size, readAll: func() { delivered.Store(true); readAll() }}
	type result struct {
		rec  queue.Recording
		held bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, held, err := s.a.store.Offload(cctx, rec, pr, queue.Event{Kind: queue.EvOffloaded, Slot: s.index, Device: device}, beforeCommit...)
		done <- result{r, held, err}
	}()
	stall := time.Duration(s.a.cfg.CopyStall)
	tick := time.NewTicker(stall / 4)
	defer tick.Stop()
	last, lastAt := int64(-1), time.Now()
	for {
		select {
		case r := <-done:
			return r.rec, r.held, r.err
		case <-tick.C:
			if n := pr.n.Load(); n != last {
				last, lastAt = n, time.Now()
				continue
			}
			if delivered.Load() {
				continue // the dock's own fsyncs and commit: a slow spool is not the camera's stall
			}
			if time.Since(lastAt) >= stall {
				cancel()
				src.Close() // unblocks a read on a pollable file; a hung device read stays behind
				return rec, false, fmt.Errorf("%s: %w after %d bytes (%s without progress)", rec.Name, errCopyStalled, last, stall)
			}
		}
	}
}

func (s *slot) telemetry() wire.SlotTelemetry {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := wire.SlotTelemetry{Slot: s.index, State: string(s.state), Device: s.device, Officer: s.officer, Charging: s.charging}
	if b := s.battery; b != nil {
		t.Battery = &wire.Battery{ChargePct: b.ChargePct, HealthPct: b.HealthPct(), TempC: b.TempC, Cycles: b.Cycles, VoltageMV: b.VoltageMV}
		lasts := health.LastsShift(*b, 12*time.Hour, s.a.cfg.ShiftDrawMAh)
		t.LastsShift = &lasts
	}
	t.ServiceDue = s.serviceDue
	if st := s.storage; st != nil {
		t.Storage = &wire.Storage{Capacity: st.Capacity, Free: st.Free, BadBlocks: st.BadBlocks, WearPct: st.WearPct, Errors: st.Errors}
	}
	if s.device != "" {
		for c := range s.a.openFaults(s.device) {
			t.Faults = append(t.Faults, string(c))
		}
	}
	return t
}

func jsonMarshal(v any) json.RawMessage { b, _ := json.Marshal(v); return b }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
