package fleet

import (
	"fmt"
	"testing"
	"time"

	"dock/uplink/wire"
)

// A dock's team is its running config's, or, before it runs one of central's, the one
// pushed to it.
func TestDockTeam(t *testing.T) {
	db := openTest(t)
	team := func(want string) {
		t.Helper()
		if got, err := db.DockTeam("dock-1"); err != nil || got != want {
			t.Fatalf("team %q (%v), want %q", got, err, want)
		}
	}
	team("")
	if err := db.DockStatus("dock-1", wire.StatusMsg{State: "online", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	team("")
	push := func(v int64, team string) {
		t.Helper()
		id, err := db.StartRollout(v, fmt.Sprintf(`{"version":%d,"team":%q}`, v, team), []string{"dock-1"}, 1, "all", "admin")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.MarkPushed(id, "dock-1", v); err != nil {
			t.Fatal(err)
		}
	}
	report := func(v int64) {
		t.Helper()
		if err := db.DockReported("dock-1", wire.ReportedMsg{Version: v, Status: "applied", Active: v, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	push(1, "North")
	team("North") // pushed, not yet applied
	report(1)
	team("North")
	push(2, "South")
	team("North") // the dock still runs version 1
	report(2)
	team("South")
}
