// Package configrule owns the rules a config pushed to a dock must pass, field by field:
// the dock applies them to what it receives and central's console to what it signs, so
// both refuse the same configs. Pure: no I/O, no state (version order is the dock's).
package configrule

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"dock/health"
	"dock/uplink/wire"
)

// personID is what a device serial or officer id may be.
var personID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Ranges of the periods a config may set.
const (
	MinAlertEvery     = time.Second
	MaxAlertEvery     = 24 * time.Hour
	MinTelemetryEvery = time.Second
	MaxTelemetryEvery = time.Hour
)

// Team checks a team name.
func Team(team string) error {
	if team == "" || len(team) > 128 {
		return fmt.Errorf("team name must be 1-128 characters")
	}
	return nil
}

// Officers checks device -> officer assignments and returns them as a new map.
func Officers(m map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for dev, off := range m {
		if !personID.MatchString(dev) || !personID.MatchString(off) {
			return nil, fmt.Errorf("officer assignment %q -> %q is not two ids", dev, off)
		}
		out[dev] = off
	}
	return out, nil
}

// Thresholds reads pushed thresholds over base (fields not pushed keep base's) and checks
// them; none pushed is base.
func Thresholds(base health.Thresholds, raw json.RawMessage) (health.Thresholds, error) {
	if len(raw) == 0 {
		return base, nil
	}
	th := base
	if err := json.Unmarshal(raw, &th); err != nil {
		return base, fmt.Errorf("thresholds: %v", err)
	}
	if err := th.Check(); err != nil {
		return base, fmt.Errorf("thresholds: %v", err)
	}
	return th, nil
}

// DeviceSet checks a pushed list of device serials (field names it in the error).
func DeviceSet(field string, ids []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, d := range ids {
		if !personID.MatchString(d) {
			return nil, fmt.Errorf("%s: device %q is not an id", field, d)
		}
		set[d] = true
	}
	return set, nil
}

// Period checks a pushed duration against its range; zero keeps cur.
func Period(field string, pushed wire.Duration, cur, lo, hi time.Duration) (time.Duration, error) {
	d := time.Duration(pushed)
	if d == 0 {
		return cur, nil
	}
	if d < lo || d > hi {
		return cur, fmt.Errorf("%s %s not in %s..%s", field, d, lo, hi)
	}
	return d, nil
}

// Check applies every field rule to m, as the dock would to a config arriving on top of
// its defaults: the first broken rule is the error.
func Check(m wire.ConfigMsg) error {
	if err := Team(m.Team); err != nil {
		return err
	}
	if _, err := Officers(m.Officers); err != nil {
		return err
	}
	if _, err := Thresholds(health.DefaultThresholds(), m.Thresholds); err != nil {
		return err
	}
	if _, err := DeviceSet("blocked", m.Blocked); err != nil {
		return err
	}
	if _, err := DeviceSet("due_out", m.DueOut); err != nil {
		return err
	}
	if _, err := Period("alert_every", m.AlertEvery, 0, MinAlertEvery, MaxAlertEvery); err != nil {
		return err
	}
	_, err := Period("telemetry_every", m.TelemetryEvery, 0, MinTelemetryEvery, MaxTelemetryEvery)
	return err
}
