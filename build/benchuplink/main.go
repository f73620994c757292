// Command benchuplink times the dock's upload of one recording through an MQTT broker to
// the central receiver (which fsyncs and verifies the hash), and, with -cut, how many bytes
// are sent again when the dock's connection is cut at 90 %. For build/bench-uplink.sh.
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"dock/queue"
	"dock/uplink"
	"dock/uplink/central"
)

func main() {
	broker := flag.String("broker", "", "MQTT broker URL")
	src := flag.String("src", "", "the recording")
	dir := flag.String("dir", "", "work directory")
	chunk := flag.Int("chunk", 1<<20, "chunk size")
	window := flag.Int("window", 16, "chunks in flight")
	cut := flag.Float64("cut", 0, "cut the dock's connection at this fraction (0: never)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run here")
	flag.Parse()
	if err := run(*broker, *src, *dir, *chunk, *window, *cut, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "benchuplink:", err)
		os.Exit(1)
	}
}

func run(broker, src, dir string, chunk, window int, cut float64, cpuprofile string) error {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	q, err := queue.Open(filepath.Join(dir, "dock"), log)
	if err != nil {
		return err
	}
	defer q.Close()
	key, err := queue.LoadKey(filepath.Join(dir, "spool.key"))
	if err != nil {
		return err
	}
	q.Encrypt(key) // as the agent does: the upload decrypts as it reads
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	info, _ := f.Stat()
	rec, _, err := q.Offload(ctx, queue.Recording{ID: "BENCH_upload.mp4", Name: "upload.mp4", Device: "BENCH", Size: info.Size(), Start: time.Now()}, f, queue.Event{Kind: queue.EvOffloaded})
	f.Close()
	if err != nil {
		return err
	}
	pub, signer, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	rcv, err := central.Start(ctx, central.Options{Broker: broker, ClientID: "bench-central", Store: central.FileStore{Dir: filepath.Join(dir, "central")}, ChunkSize: chunk, Window: window, SigningKey: signer}, log)
	if err != nil {
		return err
	}
	defer rcv.Close()

	session := func(ctx context.Context) (*uplink.Uplink, context.CancelFunc) {
		u, err := uplink.Dial(ctx, uplink.Options{Broker: broker, Dock: "bench-dock", CentralKey: pub}, log)
		if err != nil {
			panic(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		go uplink.NewSender(u, q, log).Run(sctx)
		return u, cancel
	}
	if cpuprofile != "" {
		// The upload only: the offload above is bench-offload's business.
		pf, err := os.Create(cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(pf)
		}
		if err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	u, stop := session(ctx)
	if cut > 0 {
		for rcv.Progress("bench-dock", rec.ID) < int64(cut*float64(rec.Size)) {
			time.Sleep(2 * time.Millisecond)
		}
		stop()
		u.Close() // the connection drops; the next session resumes from central's offset
		u, stop = session(ctx)
	}
	defer stop()
	for {
		r, err := q.Get(rec.ID)
		if err != nil {
			return err
		}
		if r.State == queue.Verified || r.State == queue.Freed {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("upload did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start).Seconds()
	u.Close()
	s, ok, err := rcv.Store().Lookup(rec.ID)
	if err != nil || !ok || s.SHA256 != rec.SHA256 {
		return fmt.Errorf("central's copy does not verify: %v %v", ok, err)
	}
	fmt.Printf("%.3f %d %d\n", elapsed, rcv.BytesReceived(), rec.Size)
	return nil
}
