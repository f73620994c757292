package configrule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"dock/uplink/wire"
)

func TestCheck(t *testing.T) {
	good := func() wire.ConfigMsg {
		return wire.ConfigMsg{Version: 2, Team: "T-1", Officers: map[string]string{"CAM-1": "OF-1"}, Blocked: []string{"CAM-9"},
			AlertEvery: wire.Duration(time.Minute), TelemetryEvery: wire.Duration(10 * time.Second)}
	}
	for _, c := range []struct {
		name string
		mod  func(*wire.ConfigMsg)
		want string // "" = accepted
	}{
		{"good", func(*wire.ConfigMsg) {}, ""},
		{"no team", func(m *wire.ConfigMsg) { m.Team = "" }, "team name"},
		{"long team", func(m *wire.ConfigMsg) { m.Team = strings.Repeat("t", 129) }, "team name"},
		{"officer not an id", func(m *wire.ConfigMsg) { m.Officers["CAM-1"] = "O F" }, "officer assignment"},
		{"blocked not an id", func(m *wire.ConfigMsg) { m.Blocked = []string{"../x"} }, "blocked"},
		{"due_out not an id", func(m *wire.ConfigMsg) { m.DueOut = []string{""} }, "due_out"},
		{"alert too often", func(m *wire.ConfigMsg) { m.AlertEvery = wire.Duration(time.Millisecond) }, "alert_every"},
		{"telemetry too rare", func(m *wire.ConfigMsg) { m.TelemetryEvery = wire.Duration(2 * time.Hour) }, "telemetry_every"},
		{"thresholds not JSON", func(m *wire.ConfigMsg) { m.Thresholds = json.RawMessage(`{`) }, "thresholds"},
		{"thresholds out of range", func(m *wire.ConfigMsg) { m.Thresholds = json.RawMessage(`{"min_battery_health_pct": 150}`) }, "thresholds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := good()
			c.mod(&m)
			err := Check(m)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Check: %v, want %q", err, c.want)
			}
		})
	}
}
