package simrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"dock/board/sim"
)

// RunScript drives the simulated dock from a script, one command a line:
//
//	camera SERIAL [officer=ID] [recordings=N] [size=BYTES|NkB|NMB] [marks=I:REASON,...]
//	       [full_mah=N] [temp=C] [charge=PCT] [load=DIR] [silent] [garbage]
//	       [layout=dcf] [sparse=BYTES|NMB|NGB]
//	       (layout=dcf keeps recordings in DCIM/100MEDIA, RECORD and PHOTO as real cards
//	       do; sparse adds one long recording of that size as a sparse file, random at
//	       both ends: a shift past 4 GiB without writing 4 GiB)
//	dock SLOT SERIAL
//	undock SLOT
//	wait DURATION
//	wait-empty [TIMEOUT]       until every docked camera holds no recording
//
// A camera whose directory already exists is reopened as it was (a restarted simulator
// finds its cameras where it left them). Lines starting with # are comments.
func (h *Harness) RunScript(ctx context.Context, r io.Reader, out io.Writer) error {
	cams := map[string]*sim.Camera{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if err := h.command(ctx, cams, f, out); err != nil {
			return fmt.Errorf("script line %d (%s): %w", line, sc.Text(), err)
		}
	}
	return sc.Err()
}

func (h *Harness) command(ctx context.Context, cams map[string]*sim.Camera, f []string, out io.Writer) error {
	switch f[0] {
	case "camera":
		if len(f) < 2 {
			return fmt.Errorf("camera needs a serial")
		}
		cam, err := h.scriptCamera(f[1], f[2:])
		if err != nil {
			return err
		}
		cams[f[1]] = cam
		fmt.Fprintf(out, "camera %s: %d recordings\n", f[1], len(cam.State().Files))
	case "dock":
		if len(f) != 3 {
			return fmt.Errorf("usage: dock SLOT SERIAL")
		}
		slot, err := strconv.Atoi(f[1])
		if err != nil {
			return err
		}
		cam := cams[f[2]]
		if cam == nil {
			return fmt.Errorf("no camera %s defined", f[2])
		}
		return h.Dock.Dock(slot, cam)
	case "undock":
		if len(f) != 2 {
			return fmt.Errorf("usage: undock SLOT")
		}
		slot, err := strconv.Atoi(f[1])
		if err != nil {
			return err
		}
		_, err = h.Dock.Undock(slot)
		return err
	case "wait":
		if len(f) != 2 {
			return fmt.Errorf("usage: wait DURATION")
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	case "wait-empty":
		timeout := time.Minute
		if len(f) == 2 {
			d, err := time.ParseDuration(f[1])
			if err != nil {
				return err
			}
			timeout = d
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return WaitFor(wctx, "docked cameras empty", func() bool {
			for i := range h.Dock.Slots {
				if c := h.Dock.Camera(i); c != nil && len(c.State().Files) > 0 {
					return false
				}
			}
			return true
		})
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}

func (h *Harness) scriptCamera(serial string, args []string) (*sim.Camera, error) {
	dir := filepath.Join(h.Dir, "cameras", serial)
	if _, err := os.Stat(filepath.Join(dir, "camera.json")); err == nil {
		return sim.OpenCamera(dir)
	}
	st := sim.DefaultCamera(serial, "OF-"+serial, "unit-1")
	n, size := 3, int64(1<<20)
	marks := map[int]string{}
	load := ""
	var sparse int64
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		var err error
		switch k {
		case "officer":
			st.Identity.Officer = v
		case "recordings":
			n, err = strconv.Atoi(v)
		case "size":
			size, err = parseSize(v)
		case "marks":
			for _, m := range strings.Split(v, ",") {
				i, reason, _ := strings.Cut(m, ":")
				idx, perr := strconv.Atoi(i)
				if perr != nil {
					return nil, fmt.Errorf("marks: %w", perr)
				}
				marks[idx] = reason
			}
		case "full_mah":
			st.FullMAh, err = strconv.Atoi(v)
		case "temp":
			var c float64
			c, err = strconv.ParseFloat(v, 64)
			st.TempDeciC = int(c * 10)
		case "charge":
			st.ChargePct, err = strconv.ParseFloat(v, 64)
		case "load":
			load = v
		case "layout":
			if v != sim.LayoutDCF {
				return nil, fmt.Errorf("layout %q: only %q", v, sim.LayoutDCF)
			}
			st.Layout = v
		case "sparse":
			sparse, err = parseSize(v)
		case "silent":
			st.Silent = true
		case "garbage":
			st.Garbage = true
		default:
			return nil, fmt.Errorf("unknown camera option %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	cam, err := sim.NewCamera(dir, st)
	if err != nil {
		return nil, err
	}
	if load != "" {
		skipped, err := cam.Load(load)
		for _, s := range skipped {
			h.Log.Warn("sim: load skipped a file", "camera", serial, "path", s.Path, "why", s.Why)
		}
		return cam, err
	}
	seed := uint64(len(serial))*7919 + uint64(serial[len(serial)-1])
	if err := cam.Generate(n, size, seed, time.Now().Add(-time.Hour), marks); err != nil {
		return cam, err
	}
	if sparse > 0 {
		start := time.Now().Add(-13 * time.Hour).UTC().Truncate(time.Second)
		name := "LONG_0001.MP4"
		if st.Layout == sim.LayoutDCF {
			name = "DCIM/100MEDIA/" + name
		}
		if err := cam.PutSparse(name, sparse, seed, sim.FileMeta{Start: start, End: start.Add(12 * time.Hour)}); err != nil {
			return cam, err
		}
	}
	return cam, nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "GB"):
		mult, s = 1<<30, strings.TrimSuffix(s, "GB")
	case strings.HasSuffix(s, "MB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MB")
	case strings.HasSuffix(s, "kB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "kB")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}
