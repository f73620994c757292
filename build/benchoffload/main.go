// Command benchoffload times the dock's offload path (copy + SHA-256 + encryption into a
// write-once, fsynced spool file) on one file, for build/bench-offload.sh to compare with cp.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"dock/queue"
)

func main() {
	src := flag.String("src", "", "source file (the camera's recording)")
	dir := flag.String("dir", "", "state directory for the queue")
	encrypt := flag.Bool("encrypt", true, "encrypt the spool file (as the agent does)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the offload to this file")
	flag.Parse()
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
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(pf)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	rec, _, err := s.Offload(context.Background(), queue.Recording{ID: "bench", Name: "bench.mp4", Device: "BENCH", Size: info.Size()}, f, queue.Event{Kind: queue.EvOffloaded})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	fmt.Printf("%.3f %s\n", time.Since(start).Seconds(), rec.SHA256)
}
