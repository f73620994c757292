package fleet

import (
	"testing"
	"time"

	"dock/uplink/central"
	"dock/uplink/wire"
)

// The evidence search takes its fields as values, never as SQL: a quote or a comment in
// any of them matches nothing rather than everything.
func TestEvidenceSearchIsNotSQL(t *testing.T) {
	db := openTest(t)
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	for _, id := range []string{"r1", "r2"} {
		if err := db.RecordingFiled("dock-a", central.Stored{Meta: wire.RecordingMeta{ID: id, Device: "CAM-1", Officer: "OF-1", Class: "patrol", Start: start}}); err != nil {
			t.Fatal(err)
		}
	}
	const x = `' OR '1'='1' --`
	for _, q := range []Search{{Officer: x}, {Device: x}, {Dock: x}, {Class: x}, {Officer: `OF-1' --`}} {
		if rs, err := db.Recordings(q); err != nil || len(rs) != 0 {
			t.Errorf("search %+v: %d recordings (%v), want none", q, len(rs), err)
		}
	}
	if _, err := db.Recordings(Search{Day: x}); err == nil {
		t.Error("a day that is not a date was taken")
	}
	if rs, err := db.Recordings(Search{Officer: "OF-1"}); err != nil || len(rs) != 2 {
		t.Fatalf("search OF-1: %d (%v), want 2", len(rs), err)
	}
}
