package queue

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// pendingByScan is the pending list as a scan of every record orders it.
func pendingByScan(t testing.TB, s *Store) []string {
	t.Helper()
	var keys []string
	if err := s.Each(func(r Recording) error {
		if r.State == Spooled {
			keys = append(keys, string(pendingKey(r)))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = pendingID([]byte(k))
	}
	return ids
}

func pendingIDs(t testing.TB, s *Store, n int) []string {
	t.Helper()
	p, err := s.Pending(n)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(p))
	for i, r := range p {
		ids[i] = r.ID
	}
	return ids
}

// The pending list read from the remembered heads is the list a full scan gives, whatever
// mix of arrivals (older than the head too), leases, releases and receipts came before,
// and the heads move past what uploads consumed.
func TestPendingHeadsFollowTheQueue(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	var seed []Recording
	for i := range 300 {
		seed = append(seed, Recording{ID: fmt.Sprintf("CAM-%d_%03d.mp4", i%5, i), Device: "D", Size: 10, SHA256: sum([]byte{byte(i)}),
			Start: t0.Add(time.Duration(i) * time.Minute), State: Spooled, Class: []Class{Patrol, Patrol, Evidence}[i%3]})
	}
	if err := s.Import(seed, "test"); err != nil {
		t.Fatal(err)
	}
	leased := map[string]Recording{}
	next := 0
	for step := range 400 {
		var what string
		switch op := rng.IntN(10); {
		case op < 5: // upload the head of the queue
			p, err := s.Pending(1)
			if err != nil || len(p) == 0 {
				t.Fatalf("step %d: pending: %v %v", step, p, err)
			}
			r, err := s.Lease(p[0].ID, "t")
			if err != nil {
				t.Fatal(err)
			}
			leased[r.ID] = r
			what = "lease " + r.ID
		case op < 7 && len(leased) > 0: // a receipt
			for id, r := range leased {
				if _, err := s.Verify(id, r.SHA256, r.Size); err != nil {
					t.Fatal(err)
				}
				delete(leased, id)
				what = "verify " + id
				break
			}
		case op < 8 && len(leased) > 0: // a transfer ended without receipt
			for id := range leased {
				if _, err := s.Release(id, "test"); err != nil {
					t.Fatal(err)
				}
				delete(leased, id)
				what = "release " + id
				break
			}
		default: // a camera docks with footage older than anything queued, or newer
			next++
			start := t0.Add(time.Duration(rng.IntN(600)-300) * time.Minute)
			hold := ""
			if rng.IntN(8) == 0 {
				hold = HoldDispute
			}
			r := commit(t, s, fmt.Sprintf("CAM-9_%03d.mp4", next), start, []Class{Patrol, Evidence}[rng.IntN(2)], hold)
			what = "commit " + r.ID
		}
		want := pendingByScan(t, s)
		if got := pendingIDs(t, s, 4); !slices.Equal(got, want[:min(4, len(want))]) {
			t.Fatalf("step %d (%s): pending %v, a scan gives %v", step, what, got, want[:min(4, len(want))])
		}
	}
	// Every head sits at or after every key an upload consumed before the class's first
	// pending key: readers no longer start at the beginning of the index.
	want := pendingByScan(t, s)
	if got := pendingIDs(t, s, len(want)+1); !slices.Equal(got, want) {
		t.Fatalf("whole pending list differs from a scan:\n got %v\nwant %v", got, want)
	}
	m := s.heads.mark()
	for r := range classes {
		if m.from[r] == nil {
			t.Errorf("class %d: head never moved from the start of the index", r)
		}
	}
	first, err := s.Get(want[0])
	if err != nil {
		t.Fatal(err)
	}
	if k := pendingKey(first); !bytes.Equal(m.from[rank(first)], k) {
		t.Errorf("head of class %d is %q, want the first pending key %q", rank(first), m.from[rank(first)], k)
	}
}

// Readers running while recordings arrive ahead of the head never push the head past one.
func TestPendingHeadsUnderConcurrentArrivals(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	for i := range 20 {
		commit(t, s, fmt.Sprintf("CAM-1_%02d.mp4", i), t0.Add(time.Duration(i)*time.Hour), Patrol, "")
	}
	for range 10 { // uploads move the head forward
		p := pendingIDs(t, s, 1)
		if _, err := s.Lease(p[0], "t"); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Pending(2); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Stats(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var wrote sync.WaitGroup
	for w := range 4 {
		wrote.Add(1)
		go func() {
			defer wrote.Done()
			for i := range 10 {
				// Each older than everything before it, in a class of its own turn.
				start := t0.Add(-time.Duration(w*10+i+1) * time.Minute)
				commit(t, s, fmt.Sprintf("CAM-%d_%02d.mp4", w+2, i), start, []Class{Patrol, Evidence}[i%2], "")
			}
		}()
	}
	wrote.Wait()
	close(stop)
	wg.Wait()
	want := pendingByScan(t, s)
	if got := pendingIDs(t, s, len(want)+1); !slices.Equal(got, want) {
		t.Fatalf("after concurrent arrivals:\n got %v\nwant %v", got, want)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if oldest := t0.Add(-40 * time.Minute); !st.Oldest.Equal(oldest) {
		t.Fatalf("stats oldest %s, want %s", st.Oldest, oldest)
	}
}

// A day's span of the pending index holds exactly the spooled recordings of that day.
func TestSpooledBetweenIsOneDayOfTheQueue(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		id    string
		start time.Time
		class Class
		hold  string
		lease bool
	}{
		{"CAM-1_eve.mp4", day.Add(-time.Nanosecond), Patrol, "", false},
		{"CAM-1_midnight.mp4", day, Patrol, "", false},
		{"CAM-1_noon.mp4", day.Add(12 * time.Hour), Evidence, "", false},
		{"CAM-1_held.mp4", day.Add(13 * time.Hour), Patrol, HoldObstruction, false},
		{"CAM-1_leased.mp4", day.Add(14 * time.Hour), Patrol, "", true},
		{"CAM-2_late.mp4", day.Add(24*time.Hour - time.Nanosecond), Patrol, "", false},
		{"CAM-1_next.mp4", day.Add(24 * time.Hour), Patrol, "", false},
	}
	for _, c := range cases {
		commit(t, s, c.id, c.start, c.class, c.hold)
		if c.lease {
			if _, err := s.Lease(c.id, "t"); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	if err := s.SpooledBetween(day, day.Add(24*time.Hour), func(r Recording) error {
		got = append(got, r.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"CAM-1_held.mp4", "CAM-1_noon.mp4", "CAM-1_midnight.mp4", "CAM-2_late.mp4"}
	if !slices.Equal(got, want) {
		t.Fatalf("day of %s: %v, want %v", day.Format(time.DateOnly), got, want)
	}
}
