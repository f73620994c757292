// Command benchqueue measures the queue at fleet scale: with -populate it fills a store with
// N queued recordings; run again without it (a fresh process, as after a restart) it times
// the restart (open, release the leases a crash left, find the head of the queue), lease +
// receipt operations per second, and reports bytes on disk per recording and the process's
// peak RSS. For build/bench-offload.sh.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"

	"dock/queue"
)

// store is what the benchmark asks of a queue: dock/queue on Badger, or its SQLite peer.
type store interface {
	Import(recs []queue.Recording, why string) error
	Pending(n int) ([]queue.Recording, error)
	Lease(id, transfer string) (queue.Recording, error)
	Verify(id, sha string, size int64) (queue.Recording, error)
	ReleaseAll(why string) (int, error)
	Close() error
}

// badgerStore is dock/queue with its tally's count.
type badgerStore struct{ *queue.Store }

func (b badgerStore) Count() (int, error) {
	st, err := b.Stats()
	total := 0
	for _, c := range st.Count {
		total += c
	}
	return total, err
}

// counted is a store that says how many recordings it holds.
type counted interface {
	store
	Count() (int, error)
}

// openSQLite opens the SQLite peer (sqlite.go).
var openSQLite func(dir string) (counted, error)

// open opens the queue in dir with engine "badger" (the dock's) or "sqlite" (the peer).
func open(engine, dir string, log *slog.Logger) (counted, error) {
	switch engine {
	case "badger":
		s, err := queue.Open(dir, log)
		if err != nil {
			return nil, err
		}
		return badgerStore{s}, nil
	case "sqlite":
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return openSQLite(dir)
	}
	return nil, fmt.Errorf("engine %q: badger or sqlite", engine)
}

func main() {
	dir := flag.String("dir", "", "work directory")
	n := flag.Int("n", 1_000_000, "queued recordings")
	ops := flag.Int("ops", 2000, "lease+receipt operations to time one after another")
	groupOps := flag.Int("group-ops", 20000, "lease+receipt operations to time from -workers at once")
	workers := flag.Int("workers", 64, "concurrent lease+receipt callers for the grouped figure")
	populate := flag.Bool("populate", false, "only fill the queue")
	engine := flag.String("engine", "badger", "badger (the dock's queue) or sqlite (the peer, build/sqlitequeue)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	heapprofile := flag.String("heapprofile", "", "write the heap profile at the live heap's peak to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchqueue:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *heapprofile != "" {
		defer profilePeakHeap(*heapprofile)()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	if *populate {
		err = fill(*engine, *dir, *n, log)
	} else {
		err = measure(*engine, *dir, *n, *ops, *groupOps, *workers, log)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchqueue:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// profilePeakHeap checks the live heap every 20 ms and keeps the heap profile taken when
// it was largest; the returned function writes that profile to path.
func profilePeakHeap(path string) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	var best bytes.Buffer
	go func() {
		defer close(done)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if v := sample[1].Value.Uint64(); v > peak {
				peak = v
				best.Reset()
				_ = pprof.Lookup("heap").WriteTo(&best, 0)
				fmt.Fprintf(os.Stderr, "heap objects %.1f MiB (live after last GC %.1f MiB)\n", float64(v)/(1<<20), float64(sample[0].Value.Uint64())/(1<<20))
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if err := os.WriteFile(path, best.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "benchqueue:", err)
		}
	}
}

func fill(engine, dir string, n int, log *slog.Logger) error {
	s, err := open(engine, dir, log)
	if err != nil {
		return err
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]queue.Recording, 0, 50_000)
	for i := 0; i < n; i++ {
		batch = append(batch, queue.Recording{
			ID: fmt.Sprintf("CAM-%04d_VID_%08d.mp4", i%500, i), Name: fmt.Sprintf("VID_%08d.mp4", i), Device: fmt.Sprintf("CAM-%04d", i%500),
			Officer: "OF-1234", Team: "Team-North-3", Start: t0.Add(time.Duration(i) * time.Minute), End: t0.Add(time.Duration(i)*time.Minute + 15*time.Minute),
			Size: 400 << 20, SHA256: strings.Repeat("ab", 32), Class: queue.Patrol, State: queue.Spooled, SpooledAt: t0,
		})
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.Import(batch, "benchmark"); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	// A transfer's window of leases, left as a crash would leave them.
	p, err := s.Pending(leftLeased)
	if err != nil {
		return err
	}
	for _, r := range p {
		if _, err := s.Lease(r.ID, "before the restart"); err != nil {
			return err
		}
	}
	return s.Close()
}

// leftLeased is how many leases the filled queue holds when the measuring run opens it.
const leftLeased = 32

func measure(engine, dir string, n, ops, groupOps, workers int, log *slog.Logger) error {
	peak := sampleRSS()
	start := time.Now()
	s, err := open(engine, dir, log)
	if err != nil {
		return err
	}
	// What the agent does before it offloads or uploads anything.
	if released, err := s.ReleaseAll("benchmark restart"); err != nil || released != min(n, leftLeased) {
		return fmt.Errorf("release after reopen: %d released, %v", released, err)
	}
	if p, err := s.Pending(1); err != nil || len(p) != 1 {
		return fmt.Errorf("pending after reopen: %v", err)
	}
	reopen := time.Since(start)
	// What telemetry, the backlog announcement and the metrics ask every few seconds.
	start = time.Now()
	total, err := s.Count()
	if err != nil || total != n {
		return fmt.Errorf("stats after reopen: %d recordings, %v", total, err)
	}
	statsTook := time.Since(start)
	// Lease and apply a matching receipt: the queue's work per uploaded recording.
	start = time.Now()
	for i := 0; i < ops; i++ {
		p, err := s.Pending(1)
		if err != nil || len(p) == 0 {
			return fmt.Errorf("pending: %v", err)
		}
		if _, err := s.Lease(p[0].ID, "bench"); err != nil {
			return err
		}
		if _, err := s.Verify(p[0].ID, p[0].SHA256, p[0].Size); err != nil {
			return err
		}
	}
	opsPerSec := float64(ops) / time.Since(start).Seconds()
	// The same from many transfers and offloads at once, as a shift change makes them: the
	// queue commits their updates in groups, one fsync for many.
	// What each caller needs of its recording; the records themselves are let go, so that
	// the memory measured is the queue's, not this list's.
	type job struct {
		id, sha string
		size    int64
	}
	p, err := s.Pending(groupOps)
	if err != nil || len(p) < groupOps {
		return fmt.Errorf("pending %d: %v", groupOps, err)
	}
	work := make(chan job, len(p))
	for _, r := range p {
		work <- job{r.ID, r.SHA256, r.Size}
	}
	close(work)
	grouped := len(p)
	p = nil
	runtime.GC()
	errs := make(chan error, workers)
	start = time.Now()
	for range workers {
		go func() {
			for r := range work {
				if _, err := s.Lease(r.id, "bench"); err != nil {
					errs <- err
					return
				}
				if _, err := s.Verify(r.id, r.sha, r.size); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			return err
		}
	}
	groupPerSec := float64(grouped) / time.Since(start).Seconds()
	if err := s.Close(); err != nil {
		return err
	}
	var bytes int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			bytes += info.Size()
		}
		return nil
	})
	hwm := status("VmHWM")
	anon, file := peak()
	fmt.Printf("%.3f %.0f %.0f %.1f %.1f %.1f %.6f %.0f\n", reopen.Seconds(), opsPerSec, float64(bytes)/float64(n),
		float64(hwm)/1024, float64(anon)/1024, float64(file)/1024, statsTook.Seconds(), groupPerSec)
	return nil
}

// status reads one kB figure of /proc/self/status.
func status(field string) int {
	kb := 0
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, field+":"); ok {
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			}
		}
	}
	return kb
}

// sampleRSS samples the anonymous and file-backed resident memory every 20 ms; the
// returned function stops it and gives the peaks of each, in kB. File-backed pages are
// Badger's memory-mapped tables: the kernel drops them under memory pressure.
func sampleRSS() func() (anon, file int) {
	var anon, file int
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			anon, file = max(anon, status("RssAnon")), max(file, status("RssFile"))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int, int) { close(stop); <-done; return anon, file }
}
