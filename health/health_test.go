package health

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func codes(vs []Verdict) map[Code]Verdict {
	m := map[Code]Verdict{}
	for _, v := range vs {
		m[v.Code] = v
	}
	return m
}

func TestEvaluate(t *testing.T) {
	th := DefaultThresholds()
	good := &Battery{ChargePct: 50, TempC: 25, FullMAh: 2900, DesignMAh: 3000}
	tests := []struct {
		name      string
		r         Reading
		active    map[Code]bool
		want      []Code
		chargeOff bool
	}{
		{"healthy", Reading{Battery: good, Storage: &Storage{Capacity: 10, Free: 5}, Charging: true}, nil, nil, false},
		{"worn battery", Reading{Battery: &Battery{FullMAh: 1800, DesignMAh: 3000, TempC: 25}}, nil, []Code{BatteryWorn}, false},
		{"battery at limit is fine", Reading{Battery: &Battery{FullMAh: 2100, DesignMAh: 3000, TempC: 25}}, nil, nil, false},
		{"worn battery hysteresis holds", Reading{Battery: &Battery{FullMAh: 2130, DesignMAh: 3000, TempC: 25}}, map[Code]bool{BatteryWorn: true}, []Code{BatteryWorn}, false},
		{"hot while charging", Reading{Battery: &Battery{FullMAh: 2900, DesignMAh: 3000, TempC: 47}, Charging: true}, nil, []Code{OverTemp}, true},
		{"hot not charging", Reading{Battery: &Battery{FullMAh: 2900, DesignMAh: 3000, TempC: 47}}, nil, nil, false},
		{"cooling but inside margin", Reading{Battery: &Battery{FullMAh: 2900, DesignMAh: 3000, TempC: 43}}, map[Code]bool{OverTemp: true}, []Code{OverTemp}, true},
		{"cooled past margin", Reading{Battery: &Battery{FullMAh: 2900, DesignMAh: 3000, TempC: 41}}, map[Code]bool{OverTemp: true}, nil, false},
		{"cold while charging", Reading{Battery: &Battery{FullMAh: 2900, DesignMAh: 3000, TempC: -5}, Charging: true}, nil, []Code{UnderTemp}, true},
		{"storage errors", Reading{Storage: &Storage{Errors: 11}}, nil, []Code{StorageErrors}, false},
		{"bad blocks", Reading{Storage: &Storage{BadBlocks: 51}}, nil, []Code{StorageErrors}, false},
		{"storage worn", Reading{Storage: &Storage{WearPct: 95}}, nil, []Code{StorageWorn}, false},
		{"link lost", Reading{LinkFailures: 3}, nil, []Code{LinkLost}, true},
		{"link flaky", Reading{LinkFailures: 2}, nil, nil, false},
		{"clock behind", Reading{ClockDrift: -11 * time.Minute}, nil, []Code{ClockDrift}, false},
		{"clock close", Reading{ClockDrift: 9 * time.Minute}, nil, nil, false},
		{"blocked", Reading{Blocked: true, Battery: good}, nil, []Code{Blocked}, false},
		{"charge stalled", Reading{Battery: good, Charging: true, ChargeFlatFor: 21 * time.Minute}, nil, []Code{ChargeStalled}, true},
		{"charge flat but full", Reading{Battery: &Battery{ChargePct: 100, FullMAh: 2900, DesignMAh: 3000, TempC: 25}, Charging: true, ChargeFlatFor: time.Hour}, nil, nil, false},
		{"charge slow but moving", Reading{Battery: good, Charging: true, ChargeFlatFor: 5 * time.Minute}, nil, nil, false},
		{"bad blocks grew", Reading{Storage: &Storage{BadBlocks: 30}, PrevBadBlocks: intp(12)}, nil, []Code{BadBlockGrowth}, false},
		{"bad blocks steady", Reading{Storage: &Storage{BadBlocks: 30}, PrevBadBlocks: intp(25)}, nil, nil, false},
		{"read errors", Reading{ReadErrors: 1}, nil, []Code{ReadErrors}, false},
		{"left on camera with reason", Reading{LeftOnCamera: 3, LeftWhy: "sizes on the camera differ from its list"}, nil, []Code{NotEmptied}, false},
		{"left on camera by policy", Reading{LeftOnCamera: 3}, nil, nil, false},
		{"full camera the dock could not empty", Reading{Storage: &Storage{Capacity: 10, Free: 0}, LeftOnCamera: 2}, nil, []Code{CameraFull}, false},
		{"storage cannot be listed", Reading{StorageError: "list: camera refused"}, nil, []Code{StorageUnreadable}, false},
		{"full camera emptied", Reading{Storage: &Storage{Capacity: 10, Free: 0}}, nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := codes(Evaluate(tc.r, th, tc.active))
			if len(got) != len(tc.want) {
				t.Fatalf("verdicts %v, want %v", got, tc.want)
			}
			off := false
			for _, c := range tc.want {
				v, ok := got[c]
				if !ok {
					t.Fatalf("missing %s in %v", c, got)
				}
				off = off || v.ChargeOff
			}
			if off != tc.chargeOff {
				t.Errorf("charge off = %v, want %v", off, tc.chargeOff)
			}
		})
	}
}

func intp(i int) *int { return &i }

func TestPredictCrossing(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	falling := []Sample{{Time: t0, HealthPct: 90}, {Time: t0.Add(10 * day), HealthPct: 89}, {Time: t0.Add(20 * day), HealthPct: 88}}
	when, ok := PredictCrossing(falling, 70)
	// One point per 10 days from 90: 70 is reached after 200 days.
	if !ok || when.Sub(t0.Add(200*day)).Abs() > day {
		t.Fatalf("crossing %v %v, want about %v", when, ok, t0.Add(200*day))
	}
	if _, ok := PredictCrossing(falling[:2], 70); ok {
		t.Error("predicted from two samples")
	}
	steady := []Sample{{Time: t0, HealthPct: 90}, {Time: t0.Add(10 * day), HealthPct: 90}, {Time: t0.Add(20 * day), HealthPct: 91}}
	if _, ok := PredictCrossing(steady, 70); ok {
		t.Error("predicted a crossing for a battery that is not wearing")
	}
}

func TestLastsShift(t *testing.T) {
	tests := []struct {
		b    Battery
		want bool
	}{
		{Battery{ChargePct: 100, FullMAh: 3000}, true},  // 3000 >= 12*200
		{Battery{ChargePct: 70, FullMAh: 3000}, false},  // 2100 < 2400
		{Battery{ChargePct: 100, FullMAh: 2000}, false}, // worn
	}
	for _, tc := range tests {
		if got := LastsShift(tc.b, 12*time.Hour, 200); got != tc.want {
			t.Errorf("LastsShift(%+v) = %v", tc.b, got)
		}
	}
}

func TestEvaluateDock(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	hot := 85.0
	yes, no := true, false
	l := DefaultDockLimits()
	tests := []struct {
		name string
		r    DockReading
		want []Code
	}{
		{"all well", DockReading{Now: now, Since: now.Add(-48 * time.Hour), LastDocked: map[string]time.Time{"CAM-1": now.Add(-2 * time.Hour)}}, nil},
		{"broker down long", DockReading{Now: now, BrokerDownFor: time.Hour}, []Code{BrokerUnreachable}},
		{"backlog old", DockReading{Now: now, OldestPending: now.Add(-25 * time.Hour)}, []Code{BacklogStale}},
		{"board hot", DockReading{Now: now, BoardC: &hot}, []Code{BoardHot}},
		{"device late", DockReading{Now: now, Since: now.Add(-72 * time.Hour), LastDocked: map[string]time.Time{"CAM-1": now.Add(-30 * time.Hour)}}, []Code{NotDocked}},
		{"device never seen, dock new", DockReading{Now: now, Since: now.Add(-time.Hour), LastDocked: map[string]time.Time{"CAM-1": {}}}, nil},
		{"device never seen, dock old", DockReading{Now: now, Since: now.Add(-25 * time.Hour), LastDocked: map[string]time.Time{"CAM-1": {}}}, []Code{NotDocked}},
		{"clock before the build", DockReading{Now: now, Clock: Clock{Now: time.Unix(0, 0), Floor: now.Add(-time.Hour), FloorFrom: "build"}}, []Code{ClockUnverified}},
		{"clock behind the ledger", DockReading{Now: now, Clock: Clock{Now: now, Floor: now.Add(time.Hour), FloorFrom: "ledger"}}, []Code{ClockUnverified}},
		{"clock not synchronised", DockReading{Now: now, Clock: Clock{Now: now, Floor: now.Add(-time.Hour), Synced: &no}}, []Code{ClockUnverified}},
		{"clock synchronised, after the floor", DockReading{Now: now, Clock: Clock{Now: now, Floor: now.Add(-time.Hour), Synced: &yes}}, nil},
		{"clock after the floor, system cannot say", DockReading{Now: now, Clock: Clock{Now: now, Floor: now.Add(-time.Hour)}}, nil},
	}
	for _, tc := range tests {
		got := EvaluateDock(tc.r, l)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %+v, want %v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i].Code != tc.want[i] {
				t.Errorf("%s: %s, want %s", tc.name, got[i].Code, tc.want[i])
			}
		}
	}
}

func TestThresholdsCheck(t *testing.T) {
	if err := DefaultThresholds().Check(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Thresholds){
		func(t *Thresholds) { t.MinBatteryHealthPct = 0 },
		func(t *Thresholds) { t.MaxChargeTempC = 90 },
		func(t *Thresholds) { t.MinChargeTempC = 50 },
		func(t *Thresholds) { t.MaxWearPct = 0 },
		func(t *Thresholds) { t.MaxClockDrift = 0 },
		func(t *Thresholds) { t.LinkFailures = 0 },
		func(t *Thresholds) { t.MaxStorageErrors = -1 },
	}
	for i, f := range bad {
		th := DefaultThresholds()
		f(&th)
		if th.Check() == nil {
			t.Errorf("bad thresholds %d accepted: %+v", i, th)
		}
	}
}

func TestFaultLifecycle(t *testing.T) {
	tests := []struct {
		from FaultState
		ev   FaultEvent
		to   FaultState
		ok   bool
	}{
		{Raised, EvAlertSent, Alerted, true},
		{Alerted, EvAlertSent, Alerted, true},
		{Alerted, EvAck, Acknowledged, true},
		{Raised, EvAck, Acknowledged, true},
		{Acknowledged, EvRepair, InRepair, true},
		{InRepair, EvClear, Cleared, true},
		{Raised, EvRepair, Raised, false},
		{Acknowledged, EvAlertSent, Acknowledged, false},
		{Cleared, EvAck, Cleared, false},
		{Cleared, EvClear, Cleared, false},
	}
	for _, tc := range tests {
		got, err := NextFault(tc.from, tc.ev)
		if (err == nil) != tc.ok || got != tc.to {
			t.Errorf("NextFault(%s, %s) = %s, %v", tc.from, tc.ev, got, err)
		}
	}
}

func TestAlertRepeatsUntilAcknowledged(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := Fault{State: Raised}
	if !f.NeedsAlert(t0, time.Minute) {
		t.Fatal("new fault not alerted")
	}
	f.State, f.AlertedAt = Alerted, t0
	if f.NeedsAlert(t0.Add(30*time.Second), time.Minute) {
		t.Fatal("alert repeated too soon")
	}
	if !f.NeedsAlert(t0.Add(61*time.Second), time.Minute) {
		t.Fatal("unacknowledged alert not repeated")
	}
	f.State = Acknowledged
	if f.NeedsAlert(t0.Add(time.Hour), time.Minute) {
		t.Fatal("acknowledged alert repeated")
	}
}

// Durations in thresholds are "10m" strings like every other duration in the configs;
// nanoseconds from configs written before are still read; a field left out keeps its value.
func TestThresholdsJSONDurations(t *testing.T) {
	def := DefaultThresholds()
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"max_clock_drift":"10m0s"`) || !strings.Contains(string(b), `"charge_timeout":"20m0s"`) {
		t.Fatalf("durations not written as strings: %s", b)
	}
	tests := []struct {
		in    string
		drift time.Duration
		ok    bool
	}{
		{`{"max_clock_drift":"5m"}`, 5 * time.Minute, true},
		{`{"max_clock_drift":300000000000}`, 5 * time.Minute, true},
		{`{"min_battery_health_pct":80}`, def.MaxClockDrift, true},
		{`{"max_clock_drift":"five minutes"}`, 0, false},
		{`{"max_clock_drift":true}`, 0, false},
	}
	for _, tc := range tests {
		got := def
		err := json.Unmarshal([]byte(tc.in), &got)
		if (err == nil) != tc.ok || tc.ok && (got.MaxClockDrift != tc.drift || got.ChargeTimeout != def.ChargeTimeout) {
			t.Errorf("%s: drift %s charge %s, %v", tc.in, got.MaxClockDrift, got.ChargeTimeout, err)
		}
	}
	var back Thresholds
	if err := json.Unmarshal(b, &back); err != nil || back != def {
		t.Fatalf("round trip %+v, %v", back, err)
	}
}
