package wire

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sealedSamples are central's five messages, every field set.
func sealedSamples() map[string]func() Sealed {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	sha := strings.Repeat("ab", 32)
	seal := Seal{Dock: "dock-1", Seq: 1764489600000000000}
	return map[string]func() Sealed{
		TopicGrant: func() Sealed {
			return &GrantMsg{ID: "g", Recordings: []string{"r"}, Max: 1, ChunkSize: 1 << 20, Window: 8, RateBytes: 5, Until: now, Paused: true, Revoked: true, Seal: seal}
		},
		TopicAck: func() Sealed { return &AckMsg{Transfer: "g/r", Recording: "r", Offset: 5, Error: "e", Seal: seal} },
		TopicReceipt: func() Sealed {
			return &ReceiptMsg{Recording: "r", Size: 9, SHA256: sha, Stored: now, Error: "e", Seal: seal}
		},
		TopicConfig: func() Sealed {
			return &ConfigMsg{Version: 3, Team: "T", Officers: map[string]string{"CAM-1": "OF-1"}, Thresholds: json.RawMessage(`{"min_battery_health_pct":70}`),
				Blocked: []string{"CAM-9"}, DueOut: []string{"CAM-2"}, AlertEvery: Duration(time.Minute), TelemetryEvery: Duration(time.Second), DeleteAfterReceipt: true, Expires: now, Seal: seal}
		},
		TopicCommand: func() Sealed {
			return &CommandMsg{Kind: "release-hold", Fault: "f", Recording: "r", Party: "p", Case: "c", By: "b", Reason: "dispute", Device: "CAM-1", Day: "2026-11-27", Count: 2, Seal: seal}
		},
		TopicLedgerAck: func() Sealed { return &LedgerAckMsg{HeadSeq: 200, HeadHash: sha, Error: "e", Seal: seal} },
	}
}

// Each message survives signing, the trip through JSON and Open; unsigned, signed by
// another key or sealed for another dock it is refused.
func TestSealRoundTrip(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	for kind, mk := range sealedSamples() {
		m := mk()
		if err := Open(m, pub, "dock-1"); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s unsigned: %v", kind, err)
		}
		Sign(m, priv)
		b, _ := json.Marshal(m)
		back := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Sealed)
		if err := json.Unmarshal(b, back); err != nil {
			t.Fatal(err)
		}
		if err := Open(back, pub, "dock-1"); err != nil {
			t.Errorf("%s after JSON: %v", kind, err)
		}
		if err := Open(back, pub, "dock-2"); !errors.Is(err, ErrOtherDock) {
			t.Errorf("%s sealed for dock-1 opened by dock-2: %v", kind, err)
		}
		if err := Open(back, nil, "dock-1"); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s with no key: %v", kind, err)
		}
		Sign(m, other)
		if err := Open(m, pub, "dock-1"); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s signed by another key: %v", kind, err)
		}
	}
}

// Changing any one field of a signed message, Dock and Seq included, breaks its signature;
// so does passing one kind off as another with the same fields.
func TestSealEveryFieldTampered(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	for kind, mk := range sealedSamples() {
		m := mk()
		Sign(m, priv)
		v := reflect.ValueOf(m).Elem()
		var fields []int
		for i := 0; i < v.NumField(); i++ {
			fields = append(fields, i)
		}
		n := 0
		for _, i := range fields {
			paths := [][]int{{i}}
			if v.Type().Field(i).Name == "Seal" {
				paths = [][]int{{i, 0}, {i, 1}} // Dock, Seq
			}
			for _, path := range paths {
				c := mk()
				Sign(c, priv)
				f := reflect.ValueOf(c).Elem().FieldByIndex(path)
				tamper(t, f)
				n++
				if err := Verify(c, pub); !errors.Is(err, ErrBadSignature) {
					t.Errorf("%s: field %s changed, signature still valid", kind, v.Type().FieldByIndex(path).Name)
				}
			}
		}
		if n < 3 {
			t.Errorf("%s: only %d fields tried", kind, n)
		}
	}
	// A grant's signature does not pass for an ack's, though both are JSON.
	a := &AckMsg{Recording: "r", Seal: Seal{Dock: "dock-1", Seq: 1}}
	Sign(a, priv)
	c := &CommandMsg{Recording: "r", Seal: a.Seal}
	if err := Verify(c, pub); !errors.Is(err, ErrBadSignature) {
		t.Error("an ack's signature passed for a command")
	}
}

func tamper(t *testing.T, f reflect.Value) {
	t.Helper()
	switch f.Kind() {
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Int, reflect.Int64:
		f.SetInt(f.Int() + 1)
	case reflect.Uint64:
		f.SetUint(f.Uint() + 1)
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Slice:
		if f.Type() == reflect.TypeOf(json.RawMessage(nil)) {
			f.Set(reflect.ValueOf(json.RawMessage(`{"min_battery_health_pct":71}`)))
			return
		}
		f.Set(reflect.Append(f, reflect.ValueOf("extra")))
	case reflect.Map:
		f.SetMapIndex(reflect.ValueOf("CAM-X"), reflect.ValueOf("OF-X"))
	case reflect.Struct:
		if tm, ok := f.Interface().(time.Time); ok {
			f.Set(reflect.ValueOf(tm.Add(time.Second)))
			return
		}
		t.Fatalf("cannot tamper with %s", f.Type())
	default:
		t.Fatalf("cannot tamper with %s", f.Type())
	}
}
