package queue

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A hold central places (the console's Evidence page, article 13) keeps the dock's copy
// after central's receipt until central releases it; on a recording already freed it is a
// ledger entry and nothing else. Both are in the ledger with who ordered them.
func TestHoldPlacedByCentralKeepsTheCopy(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	r := commit(t, s, "rec", time.Now(), Patrol, "")
	gone := commit(t, s, "gone", time.Now(), Patrol, "")
	for _, id := range []string{"rec", "gone"} {
		if _, err := s.Lease(id, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Verify("gone", gone.SHA256, gone.Size); err != nil {
		t.Fatal(err)
	}
	if err := s.Free("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PlaceHold("rec", HoldDispute, "sup-1"); err != nil {
		t.Fatal(err)
	}
	v, err := s.Verify("rec", r.SHA256, r.Size)
	if err != nil {
		t.Fatal(err)
	}
	if v.Freeable() {
		t.Fatalf("verified recording under central's hold is freeable: %+v", v)
	}
	if err := s.Free("rec"); err == nil {
		t.Fatal("freed a recording central placed a hold on")
	}
	if _, err := os.Stat(s.spool.path("rec")); err != nil {
		t.Fatal("the held copy is gone:", err)
	}
	if got, err := s.PlaceHold("gone", HoldDispute, "sup-1"); err != nil || got.State != Freed {
		t.Fatalf("hold on a freed recording: %+v %v, want the record as it was", got, err)
	}
	if _, err := s.ReleaseHold("rec", "sup-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Free("rec"); err != nil {
		t.Fatalf("free after central's release: %v", err)
	}
	var holds []string
	_ = s.Ledger(1, func(e Entry) error {
		if e.Kind == EvHold {
			holds = append(holds, e.Recording+": "+e.Detail)
		}
		return nil
	})
	joined := strings.Join(holds, "\n")
	if len(holds) != 3 || !strings.Contains(joined, `rec: hold "dispute" placed by central, ordered by "sup-1"`) ||
		!strings.Contains(joined, `gone: hold "dispute" placed`) || !strings.Contains(joined, `ordered by "sup-2"`) {
		t.Fatalf("hold entries:\n%s", joined)
	}
}
