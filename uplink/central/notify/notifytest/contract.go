// Package notifytest owns the contract every notify.Store keeps, as a test any
// implementation (memory, file, the fleet's database) runs against itself.
package notifytest

import (
	"testing"
	"time"

	"dock/uplink/central/notify"
)

// StoreContract checks a Store. open returns a new empty store and a function that
// reopens it as a restarted central would (for a store in memory, the same store).
func StoreContract(t *testing.T, open func(t *testing.T) (notify.Store, func() notify.Store)) {
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	fault := func(dock, id string, raised time.Time, seen time.Time) notify.Fault {
		return notify.Fault{Dock: dock, ID: id, Device: "CAM-1", Slot: 2, Code: "battery-worn", Detail: "health 61 %\nbelow 70 %", RaisedAt: raised, Seen: seen}
	}
	t.Run("repeats are known, across a restart", func(t *testing.T) {
		s, reopen := open(t)
		f := fault("dock-1", "CAM-1/battery-worn", t0, t0.Add(time.Second))
		for i, want := range []bool{true, false} {
			added, err := s.AddFault(f)
			if err != nil || added != want {
				t.Fatalf("AddFault #%d: added %v, err %v; want %v", i+1, added, err, want)
			}
		}
		s = reopen()
		if added, err := s.AddFault(f); err != nil || added {
			t.Fatalf("after reopen: added %v, err %v: a repeat after a restart would be sent again", added, err)
		}
		again := f
		again.RaisedAt = t0.Add(time.Hour) // cleared and raised again: a new fault
		if added, err := s.AddFault(again); err != nil || !added {
			t.Fatalf("raised again: added %v, err %v", added, err)
		}
	})
	t.Run("pending, gathered, delivered, across restarts", func(t *testing.T) {
		s, reopen := open(t)
		a := fault("dock-1", "CAM-1/battery-worn", t0, t0.Add(2*time.Second))
		b := fault("dock-1", "CAM-2/storage-worn", t0, t0.Add(time.Second))
		c := fault("dock-2", "CAM-3/battery-worn", t0, t0.Add(3*time.Second))
		for _, f := range []notify.Fault{a, b, c} {
			if _, err := s.AddFault(f); err != nil {
				t.Fatal(err)
			}
		}
		s = reopen()
		p, err := s.Pending()
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(p); !equal(got, []string{b.Key(), a.Key(), c.Key()}) {
			t.Fatalf("pending %v, want oldest seen first", got)
		}
		if p[0].Detail != b.Detail || !p[0].RaisedAt.Equal(b.RaisedAt) || p[0].Slot != b.Slot {
			t.Fatalf("pending fault %+v, want %+v", p[0], b)
		}
		d := notify.Delivery{ID: "d1", Team: "north", Channel: notify.ChannelWebhook, Dock: "dock-1", Faults: []notify.Fault{b, a}, Created: t0.Add(20 * time.Second), Next: t0.Add(20 * time.Second)}
		e := d
		e.ID, e.Channel = "d2", notify.ChannelEmail
		if err := s.Gather([]string{b.Key(), a.Key()}, []notify.Delivery{d, e}); err != nil {
			t.Fatal(err)
		}
		if err := s.Gather([]string{a.Key()}, []notify.Delivery{{ID: "d3"}}); err == nil {
			t.Fatal("a fault gathered twice: its faults would go out twice")
		}
		s = reopen()
		p, _ = s.Pending()
		if got := keys(p); !equal(got, []string{c.Key()}) {
			t.Fatalf("pending after gather %v, want only %s", got, c.Key())
		}
		if added, _ := s.AddFault(a); added {
			t.Fatal("a gathered fault was taken as new")
		}
		o, err := s.Open()
		if err != nil || len(o) != 2 || o[0].State != notify.Open || len(o[0].Faults) != 2 || o[0].Faults[0].Key() != b.Key() {
			t.Fatalf("open %+v, err %v; want d1 and d2 open with both faults", o, err)
		}
		sent := o[0]
		sent.State, sent.Attempts, sent.Done = notify.Sent, 2, t0.Add(time.Minute)
		retry := o[1]
		retry.Attempts, retry.Next, retry.LastError = 1, t0.Add(time.Hour), "answered 500"
		for _, d := range []notify.Delivery{sent, retry} {
			if err := s.Save(d); err != nil {
				t.Fatal(err)
			}
		}
		s = reopen()
		o, _ = s.Open()
		if len(o) != 1 || o[0].ID != retry.ID || o[0].Attempts != 1 || !o[0].Next.Equal(retry.Next) || o[0].LastError != "answered 500" {
			t.Fatalf("open after saving %+v, want only %s with its attempt", o, retry.ID)
		}
		if err := s.Save(notify.Delivery{ID: "never-gathered"}); err == nil {
			t.Fatal("saved a delivery never gathered")
		}
	})
	t.Run("prune forgets old done work only", func(t *testing.T) {
		s, reopen := open(t)
		old := fault("dock-1", "CAM-1/battery-worn", t0, t0)
		pend := fault("dock-1", "CAM-2/battery-worn", t0, t0)
		for _, f := range []notify.Fault{old, pend} {
			if _, err := s.AddFault(f); err != nil {
				t.Fatal(err)
			}
		}
		d := notify.Delivery{ID: "d1", Team: "t", Channel: notify.ChannelEmail, Dock: "dock-1", Faults: []notify.Fault{old}, Created: t0}
		o := d
		o.ID = "d2"
		if err := s.Gather([]string{old.Key()}, []notify.Delivery{d, o}); err != nil {
			t.Fatal(err)
		}
		d.State, d.Done = notify.Sent, t0
		if err := s.Save(d); err != nil {
			t.Fatal(err)
		}
		if err := s.Prune(t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		s = reopen()
		if added, _ := s.AddFault(old); !added {
			t.Fatal("a fault delivered before the prune is still remembered")
		}
		if p, _ := s.Pending(); len(p) != 2 { // pend, and old again
			t.Fatalf("pending %v: a pending fault was pruned", keys(p))
		}
		if op, _ := s.Open(); len(op) != 1 || op[0].ID != "d2" {
			t.Fatalf("open %+v: an open delivery was pruned", op)
		}
	})
}

func keys(fs []notify.Fault) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Key()
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
