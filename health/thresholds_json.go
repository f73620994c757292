package health

import (
	"encoding/json"
	"fmt"
	"time"
)

// thresholdsJSON is Thresholds as configs carry it: durations as "10m" strings, like every
// other duration in the dock's configs.
type thresholdsJSON struct {
	plainThresholds
	MaxClockDrift json.RawMessage `json:"max_clock_drift,omitempty"`
	ChargeTimeout json.RawMessage `json:"charge_timeout,omitempty"`
}

type plainThresholds Thresholds

// MarshalJSON writes the durations as "10m0s".
func (t Thresholds) MarshalJSON() ([]byte, error) {
	drift, _ := json.Marshal(t.MaxClockDrift.String())
	charge, _ := json.Marshal(t.ChargeTimeout.String())
	return json.Marshal(thresholdsJSON{plainThresholds(t), drift, charge})
}

// UnmarshalJSON reads durations as "10m" strings, or as nanoseconds (configs written
// before durations were strings); a field left out keeps its value.
func (t *Thresholds) UnmarshalJSON(b []byte) error {
	v := thresholdsJSON{plainThresholds: plainThresholds(*t)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	out := Thresholds(v.plainThresholds)
	for _, d := range []struct {
		name string
		raw  json.RawMessage
		to   *time.Duration
	}{{"max_clock_drift", v.MaxClockDrift, &out.MaxClockDrift}, {"charge_timeout", v.ChargeTimeout, &out.ChargeTimeout}} {
		if len(d.raw) == 0 {
			*d.to = map[string]time.Duration{"max_clock_drift": t.MaxClockDrift, "charge_timeout": t.ChargeTimeout}[d.name]
			continue
		}
		var s string
		if err := json.Unmarshal(d.raw, &s); err == nil {
			p, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			*d.to = p
			continue
		}
		var ns int64
		if err := json.Unmarshal(d.raw, &ns); err != nil {
			return fmt.Errorf("%s: a duration such as \"10m\": %s", d.name, d.raw)
		}
		*d.to = time.Duration(ns)
	}
	*t = out
	return nil
}
