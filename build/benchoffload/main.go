// Command benchoffload times the dock's offload path (copy + SHA-256 + encryption into a
// write-once, fsynced spool file) on one file, for build/bench-offload.sh to compare with cp.
// With -cameras N it times a shift change instead: N cameras offloading at once, each read
// throttled to -camera-rate, against the physical bound measured in the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"dock/queue"
)

func main() {
	src := flag.String("src", "", "source file (the camera's recording)")
	dir := flag.String("dir", "", "state directory for the queue")
	encrypt := flag.Bool("encrypt", true, "encrypt the spool file (as the agent does)")
	cameras := flag.Int("cameras", 0, "shift change: cameras offloading at once (0: one plain offload)")
	perCamera := flag.Int64("per-camera", 256<<20, "shift change: bytes each camera holds (read from -src, from its start)")
	cameraRate := flag.Float64("camera-rate", 35e6, "shift change: each camera's read rate, bytes per second (USB 2.0)")
	flag.Parse()
	if *cameras > 0 {
		if err := shift(*src, *dir, *cameras, *perCamera, *cameraRate); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	f, err := os.Open(*src)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	info, _ := f.Stat()
	s, err := queue.Open(*dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer s.Close()
	if *encrypt {
		key, err := queue.LoadKey(filepath.Join(*dir, "spool.key"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s.Encrypt(key)
	}
	start := time.Now()
	rec, err := s.Offload(context.Background(), queue.Recording{ID: "bench", Name: "bench.mp4", Device: "BENCH", Size: info.Size()}, f, queue.Event{Kind: queue.EvOffloaded})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%.3f %s\n", time.Since(start).Seconds(), rec.SHA256)
}

// shift offloads n throttled cameras at once into one encrypted spool, after measuring the
// spool disk's own rate (write + fsync of the same total), and prints the measured time,
// the physical bound (the larger of per-camera bytes / camera rate and total bytes / spool
// rate) and their ratio, the efficiency.
func shift(src, dir string, n int, per int64, rate float64) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	spoolRate, err := diskRate(filepath.Join(dir, "rate.tmp"), int64(n)*per)
	if err != nil {
		return err
	}
	s, err := queue.Open(filepath.Join(dir, "q"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer s.Close()
	key, err := queue.LoadKey(filepath.Join(dir, "spool.key"))
	if err != nil {
		return err
	}
	s.Encrypt(key)
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		go func() {
			f, err := os.Open(src)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			cam := &throttled{r: io.LimitReader(f, per), rate: rate, start: time.Now()}
			id := fmt.Sprintf("CAM-%02d_VID_0001.mp4", i)
			_, err = s.Offload(context.Background(), queue.Recording{ID: id, Name: "VID_0001.mp4", Device: fmt.Sprintf("CAM-%02d", i), Size: per}, cam, queue.Event{Kind: queue.EvOffloaded})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			return err
		}
	}
	took := time.Since(start).Seconds()
	bound := max(float64(per)/rate, float64(int64(n)*per)/spoolRate)
	fmt.Printf("%.3f %.3f %.3f %.1f\n", took, bound, bound/took, spoolRate/(1<<20))
	return nil
}

// diskRate writes size bytes to path with 1 MiB writes and an fsync, and returns bytes
// per second.
func diskRate(path string, size int64) (float64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	for done := int64(0); done < size; done += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return float64(size) / time.Since(start).Seconds(), nil
}

// throttled reads no faster than rate bytes per second on average, as a camera on USB 2.0.
type throttled struct {
	r     io.Reader
	rate  float64
	start time.Time
	n     int64
}

func (t *throttled) Read(p []byte) (int, error) {
	p = p[:min(len(p), 256<<10)]
	n, err := t.r.Read(p)
	t.n += int64(n)
	if d := time.Until(t.start.Add(time.Duration(float64(t.n) / t.rate * float64(time.Second)))); d > 0 {
		time.Sleep(d)
	}
	return n, err
}
