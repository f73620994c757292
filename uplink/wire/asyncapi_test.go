package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// The AsyncAPI document (../asyncapi.json) is the machine-readable contract: every message
// the dock sends and every message it accepts, fully populated, must match its channel's
// schema, and every field a schema names must exist in the Go type.
func TestMessagesMatchAsyncAPI(t *testing.T) {
	b, err := os.ReadFile("../asyncapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Channels map[string]map[string]any `json:"channels"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	yes := true
	sha := strings.Repeat("ab", 32)
	meta := RecordingMeta{ID: "CAM-1_a.mp4", Name: "a.mp4", Device: "CAM-1", Officer: "OF-1", Team: "T", Start: now, End: now, Class: "patrol", Hold: "dispute", ClockDrift: 12}
	entry, _ := json.Marshal(map[string]any{"seq": 1, "time": now, "kind": "docked", "slot": 1, "device": "CAM-1", "recording": "r", "detail": "d", "prev": sha, "hash": sha})
	temp := 31.5
	seal := Seal{Dock: "dock-1", Seq: 7, Sig: "c2ln"}
	samples := map[string]any{
		DockRoot + "/{dock}/" + TopicStatus:     StatusMsg{State: "online", Version: "v", Time: now},
		DockRoot + "/{dock}/" + TopicTelemetry:  TelemetryMsg{Time: now, Config: 3, BoardTempC: &temp, Queue: QueueTelemetry{Pending: 1, PendingBytes: 2, Verified: 3, Freed: 4, Oldest: now, SpoolFree: 5}, Slots: []SlotTelemetry{{Slot: 0, State: "charging", Device: "CAM-1", Officer: "OF-1", Charging: true, Faults: []string{"x"}, LastsShift: &yes, ServiceDue: now, Battery: &Battery{ChargePct: 1, HealthPct: 2, TempC: 3, Cycles: 4, VoltageMV: 5}, Storage: &Storage{Capacity: 1, Free: 1, BadBlocks: 1, WearPct: 1, Errors: 1}}}},
		DockRoot + "/{dock}/" + TopicAlert:      AlertMsg{ID: "CAM-1/battery-worn", Device: "CAM-1", Slot: 1, Code: "battery-worn", Detail: "d", State: "raised", RaisedAt: now, Attempt: 1},
		DockRoot + "/{dock}/" + TopicBacklog:    BacklogMsg{Count: 1, Bytes: 2, Oldest: now, Time: now},
		DockRoot + "/{dock}/" + TopicBegin:      BeginMsg{Transfer: "g/r", Recording: meta, Size: 9, SHA256: sha},
		DockRoot + "/{dock}/" + TopicEnd:        EndMsg{Transfer: "g/r", Recording: "r", Size: 9, SHA256: sha},
		DockRoot + "/{dock}/" + TopicReported:   ReportedMsg{Version: 2, Status: "rolled-back", Reason: "r", Active: 1, Time: now},
		DockRoot + "/{dock}/" + TopicLedger:     LedgerMsg{Entries: []json.RawMessage{entry}},
		DockRoot + "/{dock}/" + TopicHealth:     HealthMsg{Device: "CAM-1", Time: now, HealthPct: 90, Cycles: 1, BadBlocks: 2, Errors: 3, ServiceDue: now},
		CentralRoot + "/{dock}/" + TopicGrant:   GrantMsg{ID: "g", Recordings: []string{"r"}, Max: 1, ChunkSize: 1 << 20, Window: 8, RateBytes: 5, Until: now, Paused: true, Revoked: true, Seal: seal},
		CentralRoot + "/{dock}/" + TopicAck:     AckMsg{Transfer: "t", Recording: "r", Offset: 5, Error: "e", Seal: seal},
		CentralRoot + "/{dock}/" + TopicReceipt: ReceiptMsg{Recording: "r", Size: 1, SHA256: sha, Stored: now, Error: "e", Seal: seal},
		CentralRoot + "/{dock}/" + TopicConfig: ConfigMsg{Version: 1, Team: "T", Officers: map[string]string{"CAM-1": "OF-1"}, Thresholds: json.RawMessage(`{"min_battery_health_pct":70}`),
			Blocked: []string{"CAM-9"}, DueOut: []string{"CAM-2"}, AlertEvery: Duration(time.Minute), TelemetryEvery: Duration(time.Second), DeleteAfterReceipt: true, Expires: now, Seal: seal},
		CentralRoot + "/{dock}/" + TopicLedgerAck: LedgerAckMsg{HeadSeq: 200, HeadHash: sha, Error: "e", Seal: seal},
		CentralRoot + "/{dock}/" + TopicCommand:   CommandMsg{Kind: "sample", Fault: "f", Recording: "r", Party: "p", Case: "c", By: "b", Reason: "dispute", Device: "CAM-1", Day: "2026-11-27", Count: 2, Seal: seal},
	}
	documented := map[string]bool{}
	for name, ch := range doc.Channels {
		documented[name] = true
		var op map[string]any
		for _, k := range []string{"publish", "subscribe"} {
			if o, ok := ch[k].(map[string]any); ok {
				op = o
			}
		}
		msg := op["message"].(map[string]any)
		if msg["contentType"] == "application/octet-stream" {
			continue // the binary chunk: covered by TestChunkRoundTripAndCorruption
		}
		sample, ok := samples[name]
		if !ok {
			t.Errorf("channel %s has no message in the code", name)
			continue
		}
		schema := msg["payload"].(map[string]any)
		raw, _ := json.Marshal(sample)
		var v any
		_ = json.Unmarshal(raw, &v)
		if err := validate(schema, v, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// Both ways: every property the schema names is a field of the Go type.
		props := schema["properties"].(map[string]any)
		var keys []string
		for k := range props {
			if _, ok := v.(map[string]any)[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			t.Errorf("%s: schema fields %v are not in the Go type", name, keys)
		}
	}
	for name := range samples {
		if !documented[name] {
			t.Errorf("the code uses %s, which the AsyncAPI document lacks", name)
		}
	}
	// The checker itself catches an undocumented field and a wrong type.
	bad := map[string]any{"state": "online", "surprise": 1.0}
	if validate(doc.Channels[DockRoot+"/{dock}/"+TopicStatus]["subscribe"].(map[string]any)["message"].(map[string]any)["payload"].(map[string]any), bad, "status") == nil {
		t.Error("the schema check accepted an undocumented field")
	}
}

// validate checks v against the subset of JSON Schema the AsyncAPI document uses.
func validate(s map[string]any, v any, at string) error {
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || e == v
		}
		if !found {
			return fmt.Errorf("%s: %v not in %v", at, v, enum)
		}
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: not an object", at)
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := m[r]; !ok {
				return fmt.Errorf("%s: missing required %q", at, r)
			}
		}
		for k, x := range m {
			if ps, ok := props[k].(map[string]any); ok {
				if err := validate(ps, x, at+"."+k); err != nil {
					return err
				}
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					return fmt.Errorf("%s: field %q is not documented", at, k)
				}
			case map[string]any:
				if err := validate(ap, x, at+"."+k); err != nil {
					return err
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: not an array", at)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range a {
				if err := validate(items, x, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: not a string", at)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			return fmt.Errorf("%s: %q does not match %s", at, str, p)
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", at, str)
			}
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return fmt.Errorf("%s: %v is not an integer", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: %v is not a number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %v is not a boolean", at, v)
		}
	}
	return nil
}

func asStrings(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		out = append(out, x.(string))
	}
	return out
}
