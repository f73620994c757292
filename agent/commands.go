package agent

import (
	"fmt"
	"math/rand/v2"
	"time"

	"dock/health"
	"dock/queue"
	"dock/uplink/wire"
)

// custodyCommands change custody of footage or of a device: they must name who ordered
// them (By), which the ledger records.
var custodyCommands = map[string]bool{"place-hold": true, "release-hold": true, "clear-fault": true, "repair-fault": true, "ack-fault": true}

// maxHoldReason bounds a place-hold's reason, kept in the recording's record.
const maxHoldReason = 64

// command applies one of central's commands, which the uplink let through sealed for this
// dock. Its Seq must be above the last command's taken, persisted (document "seen",
// "command") before the command runs, so a command captured off the broker and published
// again is refused across restarts too.
func (a *Agent) command(c wire.CommandMsg) error {
	var seen uint64
	if _, err := a.store.GetDoc("seen", "command", &seen); err != nil {
		return err
	}
	if c.Seq <= seen {
		return fmt.Errorf("replayed: seq %d not above the last command's %d", c.Seq, seen)
	}
	if custodyCommands[c.Kind] && c.By == "" {
		return fmt.Errorf("%s without who ordered it (by)", c.Kind)
	}
	// Each kind's own ledger entry names who ordered it (fault, hold, spot check).
	if err := a.store.PutDoc("seen", "command", c.Seq); err != nil {
		return err
	}
	switch c.Kind {
	case "ack-fault":
		return a.faultEvent(c.Fault, health.EvAck, c.By)
	case "repair-fault":
		return a.faultEvent(c.Fault, health.EvRepair, c.By)
	case "clear-fault":
		return a.faultEvent(c.Fault, health.EvClear, c.By)
	case "sample":
		return a.sample(c)
	case "place-hold":
		if c.Recording == "" || c.Reason == "" || len(c.Reason) > maxHoldReason {
			return fmt.Errorf("place-hold needs a recording and a reason of 1-%d bytes", maxHoldReason)
		}
		_, err := a.store.PlaceHold(c.Recording, c.Reason, c.By)
		return err
	case "release-hold":
		if _, err := a.store.ReleaseHold(c.Recording, c.By); err != nil {
			return err
		}
		r, err := a.store.Get(c.Recording)
		if err == nil && r.Freeable() {
			return a.store.Free(c.Recording)
		}
		return err
	}
	return fmt.Errorf("unknown command %q", c.Kind)
}

// sample honours central's spot check (article 22): Count recordings of Device started on
// Day, chosen at random among those still on the dock, upload before anything else.
func (a *Agent) sample(c wire.CommandMsg) error {
	day, err := time.Parse("2006-01-02", c.Day)
	if err != nil || c.Device == "" || c.Count < 1 || c.Count > 1000 {
		return fmt.Errorf("sample needs a device, a day (YYYY-MM-DD) and a count of 1-1000")
	}
	var pool []string
	err = a.store.SpooledBetween(day, day.Add(24*time.Hour), func(r queue.Recording) error {
		if r.Device == c.Device {
			pool = append(pool, r.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rand.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	pool = pool[:min(c.Count, len(pool))]
	if err := a.store.Record(queue.Event{Kind: queue.EvAccess, Device: c.Device, Detail: fmt.Sprintf("spot check by %q: %d of %s uploaded first: %v", c.By, len(pool), c.Day, pool)}); err != nil {
		return err
	}
	if a.sender != nil {
		a.sender.Prioritize(pool)
	}
	return nil
}
