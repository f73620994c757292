package central

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"dock/uplink/wire"
)

// chainEvents makes ledger entries from seq from on, chained to prev, one per event given
// as the JSON fields of its queue.Event (kind, device, recording, detail).
func chainEvents(from uint64, prev string, events ...string) (out []json.RawMessage, last string) {
	for i, ev := range events {
		body := fmt.Sprintf(`{"seq":%d,"time":"2026-11-30T08:00:00Z",%s,"prev":%q,"hash":""}`, from+uint64(i), ev, prev)
		h := sha256.Sum256(append([]byte(prev), body...))
		hash := hex.EncodeToString(h[:])
		out = append(out, json.RawMessage(strings.TrimSuffix(body, `""}`)+`"`+hash+`"}`))
		prev = hash
	}
	return out, prev
}

func ev(kind, device, recording string) string {
	return fmt.Sprintf(`"kind":%q,"device":%q,"recording":%q`, kind, device, recording)
}

// A recording filed under a camera is checked, when the dock's chained ledger says it took
// central's receipt, against the camera that same ledger offloaded it from: a dock (or a
// client with its certificate) that names another camera in its transfer, or uploads what
// its agent never offloaded, raises a central alert; the honest case raises none. The
// filed bytes are kept either way.
func TestRecordingsAreAttestedByTheDocksLedger(t *testing.T) {
	empty := sha256.Sum256(nil)
	sum := hex.EncodeToString(empty[:])
	tests := []struct {
		name string
		// filedAs is the camera the transfer names; offloadedFrom the one the ledger names
		// ("" for no offloaded entry).
		filedAs, offloadedFrom string
		// start is where central's copy of the chain begins.
		start     uint64
		wantAlert string
	}{
		{"honest", "CAM-A", "CAM-A", 1, ""},
		{"other camera named", "CAM-A", "CAM-B", 1, AlertUnattested},
		{"never offloaded", "CAM-A", "", 1, AlertUnattested},
		{"chain began later: cannot tell", "CAM-A", "", 5, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := FileStore{Dir: t.TempDir()}
			var logs bytes.Buffer
			r := newReceiver(Options{ManualGrants: true, Store: fs}, slog.New(slog.NewTextHandler(&logs, nil)))
			const rec = "REC-1"
			meta := wire.RecordingMeta{ID: rec, Device: tt.filedAs, Officer: "framed-officer"}
			if _, err := fs.Begin("dock-1", "t1", meta, 0, sum); err != nil {
				t.Fatal(err)
			}
			if _, err := fs.Finish("dock-1", rec, 0, sum); err != nil {
				t.Fatal(err)
			}
			var events []string
			if tt.start > 1 { // central's chain begins mid-way: its first batch starts here
				events = append(events, ev("footage-access", "", ""))
			}
			events = append(events, ev("docked", tt.offloadedFrom, ""))
			if tt.offloadedFrom != "" {
				events = append(events, ev("offloaded", tt.offloadedFrom, rec))
			}
			events = append(events, ev("uploaded", tt.filedAs, rec), ev("verified", tt.filedAs, rec))
			prev := zeroHash
			if tt.start > 1 {
				prev = strings.Repeat("ab", 32)
			}
			batch, last := chainEvents(tt.start, prev, events...)
			ack := acked(r.checkLedger("dock-1", batch))
			if ack.Error != "" || ack.HeadHash != last {
				t.Fatalf("ledger not chained: %+v", ack)
			}
			var codes []string
			for _, a := range r.Alerts() {
				codes = append(codes, a.Code)
			}
			switch {
			case tt.wantAlert == "" && len(codes) != 0:
				t.Fatalf("alerts %v, want none; log: %s", codes, logs.String())
			case tt.wantAlert != "" && (len(codes) != 1 || codes[0] != tt.wantAlert):
				t.Fatalf("alerts %v, want [%s]; log: %s", codes, tt.wantAlert, logs.String())
			case tt.wantAlert != "" && !strings.Contains(logs.String(), "level=ERROR"):
				t.Fatalf("alert not logged at Error: %s", logs.String())
			}
			if _, ok, err := fs.Filed("dock-1", rec); !ok || err != nil {
				t.Fatalf("the filed recording is gone: %v", err)
			}
		})
	}
}

// The dock's agent disowning central's receipt (its ledger's receipt-rejected entry) is
// central's alert too: it is what a forged upload under the dock's certificate earns.
func TestReceiptDisownedByTheDockIsAnAlert(t *testing.T) {
	seen := &alertObserver{}
	r := newReceiver(Options{ManualGrants: true, Store: FileStore{Dir: t.TempDir()}, Observer: seen}, quiet())
	batch, _ := chainEvents(1, zeroHash, `"kind":"receipt-rejected","recording":"FORGED-1","detail":"receipt for a recording this dock does not hold"`)
	if ack := acked(r.checkLedger("dock-1", batch)); ack.Error != "" {
		t.Fatalf("ledger not chained: %+v", ack)
	}
	alerts := r.Alerts()
	if len(alerts) != 1 {
		t.Fatalf("alerts %v, want one", alerts)
	}
	for _, a := range alerts {
		if a.Code != AlertReceiptRefused || !strings.Contains(a.Detail, "FORGED-1") {
			t.Fatalf("alert %+v", a)
		}
	}
	if len(seen.alerts) != 1 || seen.alerts[0].Code != AlertReceiptRefused {
		t.Fatalf("the observer (console, notifications) was handed %+v, want the alert", seen.alerts)
	}
}

// alertObserver keeps the alerts it is handed.
type alertObserver struct{ alerts []wire.AlertMsg }

func (o *alertObserver) DockStatus(string, wire.StatusMsg) error       { return nil }
func (o *alertObserver) DockTelemetry(string, wire.TelemetryMsg) error { return nil }
func (o *alertObserver) DockAlert(_ string, a wire.AlertMsg) error {
	o.alerts = append(o.alerts, a)
	return nil
}
func (o *alertObserver) DockReported(string, wire.ReportedMsg) error                   { return nil }
func (o *alertObserver) DockHealth(string, wire.HealthMsg) error                       { return nil }
func (o *alertObserver) DockLedger(string, []json.RawMessage, wire.LedgerAckMsg) error { return nil }
func (o *alertObserver) RecordingFiled(string, Stored) error                           { return nil }

// An attestation central fails to keep stops the chain before its entry: the dock exports
// it again, and nothing is attested from a ledger central did not hold.
func TestAttestationNotKeptIsNotChained(t *testing.T) {
	dir := t.TempDir()
	fs := FileStore{Dir: dir}
	r := newReceiver(Options{ManualGrants: true, Store: fs}, quiet())
	batch, _ := chainEvents(1, zeroHash, ev("docked", "CAM-A", ""), ev("offloaded", "CAM-A", "REC-1"))
	// attest/dock-1 made a file: no directory can be made there.
	if err := writeFileSynced(dir+"/attest", []byte("x"), 0, 0o600); err != nil {
		t.Fatal(err)
	}
	ack := acked(r.checkLedger("dock-1", batch))
	if ack.Error == "" || ack.HeadSeq != 1 {
		t.Fatalf("ack %+v, want an error and head 1 (the entry before the attestation)", ack)
	}
}
