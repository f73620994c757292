package health

import (
	"fmt"
	"time"
)

// Code names a fault.
type Code string

const (
	BatteryWorn       Code = "battery-worn"     // full-charge capacity too low against design
	OverTemp          Code = "over-temperature" // too hot to charge
	UnderTemp         Code = "under-temperature"
	LinkLost          Code = "link-lost"      // the camera stopped answering
	StorageErrors     Code = "storage-errors" // error counter or bad blocks over limit
	StorageWorn       Code = "storage-worn"
	ClockDrift        Code = "clock-drift"
	Blocked           Code = "blocked"        // central's block list names the device
	ChargeStalled     Code = "charge-stalled" // charging but the charge does not rise
	BadBlockGrowth    Code = "bad-block-growth"
	ReadErrors        Code = "read-errors"        // errors met reading recordings off the camera
	NotEmptied        Code = "not-emptied"        // the camera leaves the dock with footage on it
	CameraFull        Code = "camera-full"        // storage full of footage the dock could not take: it records nothing
	StorageUnreadable Code = "storage-unreadable" // the camera's storage cannot be opened or listed
	// EntryRefused: an entry of the camera's listing failed the dock's checks (a bad name,
	// a link, a size out of range); it stays on the camera, the others are offloaded.
	EntryRefused Code = "storage-entry-refused"
)

// Thresholds are the rule limits; central sets them by config.
type Thresholds struct {
	MinBatteryHealthPct int           `json:"min_battery_health_pct"`
	MaxChargeTempC      float64       `json:"max_charge_temp_c"`
	MinChargeTempC      float64       `json:"min_charge_temp_c"`
	MaxStorageErrors    int           `json:"max_storage_errors"`
	MaxBadBlocks        int           `json:"max_bad_blocks"`
	MaxWearPct          int           `json:"max_wear_pct"`
	MaxClockDrift       time.Duration `json:"max_clock_drift"`
	LinkFailures        int           `json:"link_failures"` // consecutive unanswered requests
	// ChargeTimeout: charging with no rise in charge for this long is a fault.
	ChargeTimeout time.Duration `json:"charge_timeout"`
	// MaxBadBlockGrowth is how many new bad blocks between two dockings are tolerated.
	MaxBadBlockGrowth int `json:"max_bad_block_growth"`
	// MaxReadErrors is how many recordings may fail to read in one docking.
	MaxReadErrors int `json:"max_read_errors"`
}

// DefaultThresholds are conservative limits for lithium-ion camera packs.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MinBatteryHealthPct: 70, MaxChargeTempC: 45, MinChargeTempC: 0,
		MaxStorageErrors: 10, MaxBadBlocks: 50, MaxWearPct: 90,
		MaxClockDrift: 10 * time.Minute, LinkFailures: 3,
		ChargeTimeout: 20 * time.Minute, MaxBadBlockGrowth: 10, MaxReadErrors: 0,
	}
}

// Check rejects limits that make no physical sense.
func (t Thresholds) Check() error {
	switch {
	case t.MinBatteryHealthPct < 1 || t.MinBatteryHealthPct > 100:
		return fmt.Errorf("min_battery_health_pct %d not in 1..100", t.MinBatteryHealthPct)
	case t.MaxChargeTempC < 20 || t.MaxChargeTempC > 60:
		return fmt.Errorf("max_charge_temp_c %.1f not in 20..60", t.MaxChargeTempC)
	case t.MinChargeTempC < -20 || t.MinChargeTempC >= t.MaxChargeTempC:
		return fmt.Errorf("min_charge_temp_c %.1f not in -20..max_charge_temp_c", t.MinChargeTempC)
	case t.MaxStorageErrors < 0 || t.MaxBadBlocks < 0:
		return fmt.Errorf("storage limits must not be negative")
	case t.MaxWearPct < 1 || t.MaxWearPct > 100:
		return fmt.Errorf("max_wear_pct %d not in 1..100", t.MaxWearPct)
	case t.MaxClockDrift < time.Second:
		return fmt.Errorf("max_clock_drift %s under 1s", t.MaxClockDrift)
	case t.LinkFailures < 1 || t.LinkFailures > 100:
		return fmt.Errorf("link_failures %d not in 1..100", t.LinkFailures)
	case t.ChargeTimeout < time.Minute || t.ChargeTimeout > 24*time.Hour:
		return fmt.Errorf("charge_timeout %s not in 1m..24h", t.ChargeTimeout)
	case t.MaxBadBlockGrowth < 0 || t.MaxReadErrors < 0:
		return fmt.Errorf("max_bad_block_growth and max_read_errors must not be negative")
	}
	return nil
}

// Battery is a battery reading.
type Battery struct {
	ChargePct int
	TempC     float64
	Cycles    int
	FullMAh   int
	DesignMAh int
	VoltageMV int
}

// HealthPct is full-charge capacity over design capacity, in percent.
func (b Battery) HealthPct() int {
	if b.DesignMAh <= 0 {
		return 0
	}
	return b.FullMAh * 100 / b.DesignMAh
}

// Storage is a storage reading.
type Storage struct {
	Capacity, Free int64
	BadBlocks      int
	WearPct        int
	Errors         int
}

// Reading is what the dock knows of a docked camera at one moment. Nil parts were not read.
type Reading struct {
	Battery      *Battery
	Storage      *Storage
	Charging     bool
	LinkFailures int           // consecutive unanswered requests
	ClockDrift   time.Duration // camera minus dock at the last clock sync
	Blocked      bool
	// ChargeFlatFor is how long the charge has not risen while charging.
	ChargeFlatFor time.Duration
	// PrevBadBlocks is the bad-block count at the device's previous docking (nil: none).
	PrevBadBlocks *int
	// ReadErrors counts recordings that failed to read in this docking; ReadErrorDetail
	// says how the last one failed.
	ReadErrors      int
	ReadErrorDetail string
	// LeftOnCamera counts recordings still on the camera after offload finished, and
	// LeftWhy says why when no other rule covers it (empty when the dock chose to keep
	// them by policy or for a full spool, or when they could not be read).
	LeftOnCamera int
	LeftWhy      string
	// StorageError is why the camera's storage could not be unlocked or listed ("" if it could).
	StorageError string
}

// Verdict is one fault the rules found, with what the dock must do about it.
type Verdict struct {
	Code   Code
	Detail string
	// ChargeOff: switch the slot's charger off now.
	ChargeOff bool
	// OutOfService: lock the camera and light the fault LED; it goes for repair.
	OutOfService bool
}

// Hysteresis margins: an active fault clears only once the value is this far back inside
// its limit, so a value hovering at a threshold does not flap.
const (
	tempMarginC      = 3.0
	batteryMarginPct = 3
)

// Evaluate applies every rule to r. active holds the codes already raised for this
// device; they use the hysteresis margins to decide whether they still hold.
func Evaluate(r Reading, t Thresholds, active map[Code]bool) []Verdict {
	var out []Verdict
	add := func(v Verdict) { out = append(out, v) }
	if r.Blocked {
		add(Verdict{Code: Blocked, Detail: "device is on central's block list", OutOfService: true})
	}
	if b := r.Battery; b != nil {
		limit := t.MinBatteryHealthPct
		if active[BatteryWorn] {
			limit += batteryMarginPct
		}
		if h := b.HealthPct(); h < limit {
			add(Verdict{Code: BatteryWorn, Detail: fmt.Sprintf("battery health %d%% (full %d of design %d mAh) under %d%%", h, b.FullMAh, b.DesignMAh, t.MinBatteryHealthPct), OutOfService: true})
		}
		hot := t.MaxChargeTempC
		cold := t.MinChargeTempC
		if active[OverTemp] {
			hot -= tempMarginC
		}
		if active[UnderTemp] {
			cold += tempMarginC
		}
		if b.TempC > hot && (r.Charging || active[OverTemp]) {
			add(Verdict{Code: OverTemp, Detail: fmt.Sprintf("battery at %.1f C while charging, limit %.1f C", b.TempC, t.MaxChargeTempC), ChargeOff: true, OutOfService: true})
		}
		if b.TempC < cold && (r.Charging || active[UnderTemp]) {
			add(Verdict{Code: UnderTemp, Detail: fmt.Sprintf("battery at %.1f C, too cold to charge (limit %.1f C)", b.TempC, t.MinChargeTempC), ChargeOff: true})
		}
	}
	if s := r.Storage; s != nil {
		if s.Errors > t.MaxStorageErrors || s.BadBlocks > t.MaxBadBlocks {
			add(Verdict{Code: StorageErrors, Detail: fmt.Sprintf("storage errors %d (limit %d), bad blocks %d (limit %d)", s.Errors, t.MaxStorageErrors, s.BadBlocks, t.MaxBadBlocks), OutOfService: true})
		}
		if s.WearPct >= t.MaxWearPct {
			add(Verdict{Code: StorageWorn, Detail: fmt.Sprintf("storage wear %d%% at or over %d%%", s.WearPct, t.MaxWearPct), OutOfService: true})
		}
	}
	if r.Charging && r.ChargeFlatFor > t.ChargeTimeout && (r.Battery == nil || r.Battery.ChargePct < 100) {
		add(Verdict{Code: ChargeStalled, Detail: fmt.Sprintf("no charge progress for %s while charging (limit %s)", r.ChargeFlatFor.Round(time.Second), t.ChargeTimeout), ChargeOff: true, OutOfService: true})
	}
	if s := r.Storage; s != nil && r.PrevBadBlocks != nil && s.BadBlocks-*r.PrevBadBlocks > t.MaxBadBlockGrowth {
		add(Verdict{Code: BadBlockGrowth, Detail: fmt.Sprintf("bad blocks grew from %d to %d since the last docking (limit +%d)", *r.PrevBadBlocks, s.BadBlocks, t.MaxBadBlockGrowth), OutOfService: true})
	}
	if r.ReadErrors > t.MaxReadErrors {
		add(Verdict{Code: ReadErrors, Detail: fmt.Sprintf("%d recordings could not be read off the camera; they stay on it (%s)", r.ReadErrors, r.ReadErrorDetail), OutOfService: true})
	}
	if r.LeftOnCamera > 0 && r.LeftWhy != "" {
		add(Verdict{Code: NotEmptied, Detail: fmt.Sprintf("%d recordings left on the camera: %s", r.LeftOnCamera, r.LeftWhy), OutOfService: true})
	}
	if r.StorageError != "" {
		add(Verdict{Code: StorageUnreadable, Detail: "camera storage cannot be read: " + r.StorageError, OutOfService: true})
	}
	if s := r.Storage; s != nil && s.Capacity > 0 && s.Free == 0 && r.LeftOnCamera > 0 {
		add(Verdict{Code: CameraFull, Detail: fmt.Sprintf("storage full with %d recordings the dock could not take: the camera cannot record", r.LeftOnCamera), OutOfService: true})
	}
	if r.LinkFailures >= t.LinkFailures {
		add(Verdict{Code: LinkLost, Detail: fmt.Sprintf("%d requests unanswered", r.LinkFailures), ChargeOff: true, OutOfService: true})
	}
	d := r.ClockDrift
	if d < 0 {
		d = -d
	}
	if d > t.MaxClockDrift {
		add(Verdict{Code: ClockDrift, Detail: fmt.Sprintf("camera clock off by %s (limit %s)", r.ClockDrift.Round(time.Second), t.MaxClockDrift), OutOfService: true})
	}
	return out
}
