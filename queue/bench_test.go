package queue

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkPendingAfterUploads reads the head of a queue whose first 20,000 recordings
// were uploaded: Badger still holds their deleted pending keys.
func BenchmarkPendingAfterUploads(b *testing.B) {
	s, err := Open(b.TempDir(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	const n, left = 20_000, 10
	recs := make([]Recording, n)
	for i := range recs {
		recs[i] = Recording{ID: fmt.Sprintf("CAM-1_%05d.mp4", i), Size: 1, Start: t0.Add(time.Duration(i) * time.Second), State: Spooled, Class: Patrol}
	}
	if err := s.Import(recs, "bench"); err != nil {
		b.Fatal(err)
	}
	// The first n-left uploaded: their pending keys deleted, as leases delete them.
	wb := s.db.NewWriteBatch()
	for _, r := range recs[:n-left] {
		if err := wb.Delete(pendingKey(r)); err != nil {
			b.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if p, err := s.Pending(1); err != nil || len(p) != 1 {
			b.Fatal(p, err)
		}
		if _, err := s.Stats(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeaseReceipt leases each of b.N queued recordings and applies its matching
// receipt, from one caller and from 64 at once (transfers and offloads at a shift change),
// whose updates the committer groups under one fsync. build/benchqueue does the same over a
// million recordings.
func BenchmarkLeaseReceipt(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s, err := Open(b.TempDir(), quiet())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
			work := make(chan Recording, b.N)
			recs := make([]Recording, b.N)
			for i := range recs {
				recs[i] = Recording{ID: fmt.Sprintf("CAM-1_%08d.mp4", i), Size: 1, SHA256: sum([]byte{byte(i)}), Start: t0.Add(time.Duration(i) * time.Second), State: Spooled, Class: Patrol}
				work <- recs[i]
			}
			close(work)
			if err := s.Import(recs, "bench"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range work {
						if _, err := s.Lease(r.ID, "bench"); err != nil {
							b.Error(err)
							return
						}
						if _, err := s.Verify(r.ID, r.SHA256, r.Size); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
