package agent

import (
	"errors"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"dock/agent/version"
	"dock/health"
	"dock/queue"
)

// oldestPlausible is the floor of the dock's clock when the binary says nothing of its
// build: this code did not exist before it.
var oldestPlausible = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Clock synchronisation sources (Config.ClockSync).
const (
	// ClockSyncSystem asks systemd-timesyncd and the kernel whether the clock is
	// synchronised (a real board).
	ClockSyncSystem = "system"
	// ClockSyncNone: nothing can say (the simulator); the floor alone is checked.
	ClockSyncNone = "none"
)

// buildFloor is the earliest time this binary can run at, and where that comes from.
func buildFloor() (time.Time, string) {
	if t, err := time.Parse(time.RFC3339, version.BuildTime); err == nil {
		return t, "build time"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key != "vcs.time" {
				continue
			}
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil && t.After(oldestPlausible) {
				return t, "commit time of the build"
			}
		}
	}
	return oldestPlausible, "release of this code"
}

// clockFloor is the earliest plausible time: the build's, or the newest entry the ledger
// held before this run, if later (a clock that went back behind the ledger is wrong).
func clockFloor(store *queue.Store) (time.Time, string) {
	floor, from := buildFloor()
	if head := store.LedgerHead(); head > 0 {
		stop := errors.New("one")
		_ = store.Ledger(head, func(e queue.Entry) error {
			if e.Time.After(floor) {
				floor, from = e.Time, "newest ledger entry, seq "+strconv.FormatUint(e.Seq, 10)
			}
			return stop
		})
	}
	return floor, from
}

// systemSynced is the system's word on the clock's synchronisation: timesyncd's flag file,
// else the kernel's NTP state (adjtimex, read only). nil where neither can say (adjtimex
// refused, as under systemd's ProtectClock, and timesyncd not in use).
func systemSynced() *bool {
	yes, no := true, false
	if _, err := os.Stat("/run/systemd/timesync/synchronized"); err == nil {
		return &yes
	}
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return nil
	}
	if state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0 {
		return &no
	}
	return &yes
}

// clock is what the agent knows of its own clock now.
func (a *Agent) clock() health.Clock {
	c := health.Clock{Now: a.now(), Floor: a.floor, FloorFrom: a.floorFrom}
	if a.cfg.ClockSync != ClockSyncNone {
		c.Synced = systemSynced()
	}
	return c
}

// clockTrusted reports whether the dock's clock may set camera clocks and stamp
// recordings as verified; if not, why.
func (a *Agent) clockTrusted() (bool, string) { return health.CheckClock(a.clock()) }

// UseClock makes the agent read time from now instead of the system clock (the
// simulator and tests). Call it before Run.
func (a *Agent) UseClock(now func() time.Time) { a.now = now }
