// Command consolerun is what `make run` runs: central with its web console, an embedded
// MQTT broker and simulated docks running the real agent, on one machine with no
// hardware, until Ctrl-C. It prints the console's address and a one-time admin password.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"dock/board/sim"
	"dock/queue"
	"dock/uplink/central/console/consoletest"
)

const marker = ".dock-run"

func main() {
	dir := flag.String("dir", "build/out/run", "state directory (central's store and fleet.db, each dock's spool); wiped at start if it holds an earlier run")
	addr := flag.String("addr", "127.0.0.1:8080", "the console's address (loopback: it is served without TLS)")
	docks := flag.Int("docks", 2, "simulated docks")
	verbose := flag.Bool("v", false, "log every event to stderr")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *dir, *addr, *docks, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}

// run brings the office up, prints how to reach it on out, and runs until ctx ends.
func run(ctx context.Context, out io.Writer, dir, addr string, docks int, verbose bool) error {
	if host, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %q: the console is served without TLS, so on loopback only (127.0.0.1:PORT); central -console-cert/-console-key serve it to a network", addr)
	}
	if err := prepare(dir); err != nil {
		return err
	}
	logOut := io.Writer(os.Stderr)
	if !verbose {
		f, err := os.Create(filepath.Join(dir, "run.log"))
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	fmt.Fprintf(out, "starting an embedded MQTT broker, central with its console and %d simulated docks (state in %s)\n", docks, dir)
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	e, err := consoletest.Launch(lctx, consoletest.Options{Dir: dir, Docks: docks, Addr: addr, Log: log})
	cancel()
	if err != nil {
		return err
	}
	defer e.Close()
	if err := dockCameras(e); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nconsole:  %s\nuser:     %s\npassword: %s   (one-time, shown only now)\n\n", e.URL, e.AdminUser, e.AdminPassword)
	fmt.Fprintf(out, "cameras are docked: one with a worn battery raises a fault in the Faults inbox; more people: the People page.\nlog: %s. Ctrl-C to stop.\n", filepath.Join(dir, "run.log"))
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping")
	return nil
}

// dockCameras docks a few cameras with footage: one recording held for a dispute, one
// battery worn past the service threshold.
func dockCameras(e *consoletest.Env) error {
	specs := []struct {
		dock, bay       int
		serial, officer string
		marks           map[int]string
		mod             func(*sim.CameraState)
	}{
		{0, 0, "CAM-0001", "OF-1701", map[int]string{1: queue.HoldDispute}, nil},
		{0, 1, "CAM-0002", "OF-1702", nil, func(s *sim.CameraState) { s.FullMAh = 1850 }},
		{1, 0, "CAM-0003", "OF-1703", nil, nil},
	}
	for i, s := range specs {
		if s.dock >= len(e.Docks) {
			continue
		}
		h := e.Docks[s.dock]
		cam, _, err := h.NewCamera(s.serial, s.officer, 3, 1<<20, uint64(i+1), s.marks, s.mod)
		if err != nil {
			return err
		}
		if err := h.Dock.Dock(s.bay, cam); err != nil {
			return err
		}
	}
	return nil
}

// prepare empties dir if it holds an earlier run (and only then).
func prepare(dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("%s is not empty and holds no earlier run: choose another -dir", dir)
		}
		_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil {
				_ = os.Chmod(p, info.Mode()|0o700) // spool files are read-only
			}
			return nil
		})
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, marker), nil, 0o644)
}
