package agent

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"dock/health"
	"dock/uplink/wire"
)

// Every (state, event) pair of a bay: the one transition function allows exactly these
// moves and refuses the rest, leaving the state as it was.
func TestNextSlot(t *testing.T) {
	states := []SlotState{Empty, Docked, Identified, Offloading, Charging, OutOfService, Removed}
	events := []SlotEvent{EvPresent, EvIdentified, EvOffload, EvOffloaded, EvFaulted, EvAbsent, EvReset, EvResume}
	type move struct {
		from SlotState
		on   SlotEvent
	}
	allowed := map[move]SlotState{
		{Empty, EvPresent}: Docked, {Removed, EvPresent}: Docked,
		{Docked, EvIdentified}:  Identified,
		{Identified, EvOffload}: Offloading, {Charging, EvOffload}: Offloading, {OutOfService, EvOffload}: Offloading,
		{Offloading, EvOffloaded}: Charging,
		{Docked, EvFaulted}:       OutOfService, {Identified, EvFaulted}: OutOfService, {Offloading, EvFaulted}: OutOfService,
		{Charging, EvFaulted}: OutOfService, {OutOfService, EvFaulted}: OutOfService,
		{Docked, EvAbsent}: Removed, {Identified, EvAbsent}: Removed, {Offloading, EvAbsent}: Removed,
		{Charging, EvAbsent}: Removed, {OutOfService, EvAbsent}: Removed, {Removed, EvAbsent}: Removed,
		{Docked, EvResume}: Docked, {Identified, EvResume}: Docked, {Offloading, EvResume}: Docked,
		{Charging, EvResume}: Docked, {OutOfService, EvResume}: Docked,
		{Removed, EvReset}: Empty,
	}
	for _, s := range states {
		for _, e := range events {
			got, err := nextSlot(s, e)
			want, ok := allowed[move{s, e}]
			switch {
			case ok && (err != nil || got != want):
				t.Errorf("%s on %s: %s, %v; want %s", e, s, got, err, want)
			case !ok && err == nil:
				t.Errorf("%s on %s moved to %s: an illegal move was allowed", e, s, got)
			case !ok && (got != s || !strings.Contains(err.Error(), string(e))):
				t.Errorf("%s on %s refused as %s, %v: want the state unchanged and the event named", e, s, got, err)
			}
		}
	}
}

// Config intake: a push is applied whole or not at all; a refused one leaves the settings
// exactly as they were and says why.
func TestSettingsApply(t *testing.T) {
	cur := initialSettings(Config{Team: "T1", Thresholds: health.DefaultThresholds()})
	cur.Version, cur.RolledBack = 5, 3
	good := wire.ConfigMsg{Version: 6, Team: "T2", Officers: map[string]string{"CAM-1": "OF-1"}, Blocked: []string{"CAM-9"},
		DueOut: []string{"CAM-2"}, AlertEvery: wire.Duration(time.Minute), TelemetryEvery: wire.Duration(20 * time.Second),
		Thresholds: json.RawMessage(`{"max_wear_pct": 70}`), DeleteAfterReceipt: true}
	with := func(f func(*wire.ConfigMsg)) wire.ConfigMsg {
		m := good
		f(&m)
		return m
	}
	for _, tc := range []struct {
		name   string
		m      wire.ConfigMsg
		refuse string // in the error; "" applies
		check  func(t *testing.T, n Settings)
	}{
		{name: "a newer, valid push", m: good, check: func(t *testing.T, n Settings) {
			if n.Version != 6 || n.Team != "T2" || n.Officers["CAM-1"] != "OF-1" || !n.Blocked["CAM-9"] || !n.DueOut["CAM-2"] ||
				n.AlertEvery != time.Minute || n.TelemetryEvery != 20*time.Second || !n.DeleteAfterReceipt {
				t.Errorf("applied as %+v", n)
			}
			if n.Thresholds.MaxWearPct != 70 || n.Thresholds.MinBatteryHealthPct != cur.Thresholds.MinBatteryHealthPct {
				t.Errorf("thresholds %+v: want max_wear_pct 70 over the current ones", n.Thresholds)
			}
			if n.RolledBack != cur.RolledBack {
				t.Errorf("rolled_back %d, want %d kept", n.RolledBack, cur.RolledBack)
			}
		}},
		{name: "periods not pushed keep theirs", m: with(func(m *wire.ConfigMsg) { m.AlertEvery, m.TelemetryEvery = 0, 0 }), check: func(t *testing.T, n Settings) {
			if n.AlertEvery != cur.AlertEvery || n.TelemetryEvery != cur.TelemetryEvery {
				t.Errorf("periods %v, %v: want %v, %v kept", n.AlertEvery, n.TelemetryEvery, cur.AlertEvery, cur.TelemetryEvery)
			}
		}},
		{name: "same version", m: with(func(m *wire.ConfigMsg) { m.Version = 5 }), refuse: "not newer"},
		{name: "older version", m: with(func(m *wire.ConfigMsg) { m.Version = 4 }), refuse: "not newer"},
		{name: "no team", m: with(func(m *wire.ConfigMsg) { m.Team = "" }), refuse: "team"},
		{name: "officer not an id", m: with(func(m *wire.ConfigMsg) { m.Officers = map[string]string{"CAM-1": "../x"} }), refuse: "officer"},
		{name: "thresholds not JSON", m: with(func(m *wire.ConfigMsg) { m.Thresholds = json.RawMessage(`{`) }), refuse: "thresholds"},
		{name: "blocked device not an id", m: with(func(m *wire.ConfigMsg) { m.Blocked = []string{"a b"} }), refuse: "blocked"},
		{name: "due_out device not an id", m: with(func(m *wire.ConfigMsg) { m.DueOut = []string{""} }), refuse: "due_out"},
		{name: "alert_every too short", m: with(func(m *wire.ConfigMsg) { m.AlertEvery = wire.Duration(time.Millisecond) }), refuse: "alert_every"},
		{name: "telemetry_every too long", m: with(func(m *wire.ConfigMsg) { m.TelemetryEvery = wire.Duration(2 * time.Hour) }), refuse: "telemetry_every"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := cur.apply(tc.m)
			if tc.refuse == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.check != nil {
					tc.check(t, n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refuse) {
				t.Fatalf("err %v, want a refusal naming %q", err, tc.refuse)
			}
			if !reflect.DeepEqual(n, cur) {
				t.Errorf("a refused push changed the settings: %+v, was %+v", n, cur)
			}
		})
	}
	t.Run("rolled back versions never apply again", func(t *testing.T) {
		rb := cur
		rb.Version, rb.RolledBack = 2, 7
		n, err := rb.apply(with(func(m *wire.ConfigMsg) { m.Version = 7 }))
		if err == nil || !strings.Contains(err.Error(), "rolled back") || !reflect.DeepEqual(n, rb) {
			t.Errorf("version 7 after 7 was rolled back: %v, settings %+v", err, n)
		}
		if _, err := rb.apply(with(func(m *wire.ConfigMsg) { m.Version = 8 })); err != nil {
			t.Errorf("version 8 after 7 was rolled back: %v", err)
		}
	})
}
