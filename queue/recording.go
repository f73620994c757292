package queue

import (
	"dock/queue/record"
	"maps"
	"time"
)

// The values the queue keeps, defined in package record (which links no database).
type (
	State     = record.State
	Step      = record.Step
	Class     = record.Class
	Recording = record.Recording
	Stats     = record.Stats
)

// Recording states, steps and classes: see package record.
const (
	Spooled   = record.Spooled
	Uploading = record.Uploading
	Verified  = record.Verified
	Freed     = record.Freed

	StepLease   = record.StepLease
	StepRelease = record.StepRelease
	StepVerify  = record.StepVerify
	StepFree    = record.StepFree

	Patrol   = record.Patrol
	Evidence = record.Evidence

	HoldDispute      = record.HoldDispute
	HoldObstruction  = record.HoldObstruction
	HoldMassIncident = record.HoldMassIncident
	HoldOther        = record.HoldOther
)

// Next is the one transition function over recording states (record.Next).
func Next(s State, step Step) (State, error) { return record.Next(s, step) }

// ValidHold reports whether h is "" (no hold) or a known reason (record.ValidHold).
func ValidHold(h string) bool { return record.ValidHold(h) }

// rank orders classes for upload: holds, then evidence, then patrol.
func rank(r Recording) int {
	switch {
	case r.Hold != "":
		return 0
	case r.Class == Evidence:
		return 1
	}
	return 2
}

// tally is the queue's count of recordings by state, their bytes, the waiting ones by
// class, and the leased ones' start times (for the oldest waiting). It is kept in Badger
// and changed in the same transaction as the records it counts.
type tally struct {
	Count   map[State]int        `json:"count"`
	Bytes   map[State]int64      `json:"bytes"`
	Waiting map[string]int       `json:"waiting"`
	Leased  map[string]time.Time `json:"leased,omitempty"`
}

var classNames = [...]string{"hold", "evidence", "patrol"}

func newTally() tally {
	return tally{Count: map[State]int{}, Bytes: map[State]int64{}, Waiting: map[string]int{"hold": 0, "evidence": 0, "patrol": 0}, Leased: map[string]time.Time{}}
}

func (t tally) clone() tally {
	c := newTally()
	maps.Copy(c.Count, t.Count)
	maps.Copy(c.Bytes, t.Bytes)
	maps.Copy(c.Waiting, t.Waiting)
	maps.Copy(c.Leased, t.Leased)
	return c
}

// add counts r in (sign 1) or out (sign -1).
func (t *tally) add(r Recording, sign int) {
	t.Count[r.State] += sign
	t.Bytes[r.State] += int64(sign) * r.Size
	if t.Count[r.State] == 0 {
		delete(t.Count, r.State)
		delete(t.Bytes, r.State)
	}
	if r.State == Spooled || r.State == Uploading {
		t.Waiting[classNames[rank(r)]] += sign
	}
	if r.State == Uploading {
		if sign > 0 {
			t.Leased[r.ID] = r.Start
		} else {
			delete(t.Leased, r.ID)
		}
	}
}
