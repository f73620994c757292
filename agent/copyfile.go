package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"dock/health"
	"dock/hw"
	"dock/hw/camlink"
	"dock/queue"
)

// copyOrCompare takes one camera file into the dock's custody: it copies it into the
// spool, or, when its id is already held, reads it and compares its bytes with the dock's
// copy. Other bytes under a held id (a name reused after a format, a file the id cannot
// tell apart) are copied again under their variant id. A nil error means the dock
// durably holds a copy whose SHA-256 equals this camera file's bytes as read now.
func (o *offload) copyOrCompare(ctx context.Context, f camlink.FileEntry, rid string, readAll func()) (queue.Recording, error) {
	rec, err := o.copyFile(ctx, f, rid, readAll)
	var conflict *queue.ConflictError
	if !errors.As(err, &conflict) {
		return rec, err
	}
	variant := queue.VariantID(rid, conflict.SHA256)
	o.d.log.Warn("camera file differs from the dock's copy under its id: copying it under its own", "recording", rid, "variant", variant, "camera_sha256", conflict.SHA256, "dock_sha256", conflict.Held)
	if err := o.d.a.note(queue.Event{Kind: queue.EvInput, Slot: o.d.slot.index, Device: o.d.id.Serial, Recording: rid, Detail: fmt.Sprintf("%s on the camera has sha256 %s, the dock's copy under this id %s: filed as %s", f.Name, conflict.SHA256, conflict.Held, variant)}); err != nil {
		return rec, err
	}
	// Read twice, two different answers: the camera's file is not settled, and a copy of
	// the second read is not committed (nor kept for the next poll to add another).
	sameAsFirstRead := func(r queue.Recording) error {
		if r.SHA256 != conflict.SHA256 {
			return fmt.Errorf("%s: read as sha256 %s, then %s: %w", f.Name, conflict.SHA256, r.SHA256, errChangedDuringCopy)
		}
		return nil
	}
	return o.copyFile(ctx, f, variant, func() {}, sameAsFirstRead)
}

// copyFile copies one recording into the spool under rid, or compares it with the dock's
// copy when rid is already held (then it writes nothing). readAll is called once the
// camera has delivered its last byte.
func (o *offload) copyFile(ctx context.Context, f camlink.FileEntry, rid string, readAll func(), beforeCommit ...func(queue.Recording) error) (queue.Recording, error) {
	d := o.d
	a, id := d.a, d.id
	if _, err := a.store.Get(rid); errors.Is(err, queue.ErrNotFound) {
		free, err := a.store.Spool().FreeBytes()
		if err != nil {
			return queue.Recording{}, err
		}
		if int64(free)-f.Size-4096 < a.cfg.SpoolReserve {
			a.raise(-1, a.cfg.Dock, health.Verdict{Code: "spool-full", Detail: fmt.Sprintf("%d bytes free, reserve %d, next recording %d: offload paused, footage stays on cameras", free, a.cfg.SpoolReserve, f.Size)})
			return queue.Recording{}, fmt.Errorf("%s: %w", f.Name, errSpoolFull)
		}
		a.spaceReturned()
	}
	// Opened strictly beneath the mount, never through a link, regular files only: a
	// camera reaches nothing beyond its own files.
	mount := d.slot.def.Mount
	path := filepath.Join(mount, filepath.FromSlash(f.Name))
	open := a.board.Open
	if open == nil {
		open = func(string) (fs.File, error) { return hw.OpenBeneath(mount, f.Name) }
	}
	src, err := open(path)
	if err != nil {
		a.note(queue.Event{Kind: queue.EvInput, Slot: d.slot.index, Device: id.Serial, Recording: rid, Detail: fmt.Sprintf("open %q on camera: %v", f.Name, err)})
		return queue.Recording{}, fmt.Errorf("open %s: %w", f.Name, err)
	}
	defer src.Close()
	before, _ := src.Stat()
	d.mu.Lock()
	officer := d.officer
	d.mu.Unlock()
	rec := queue.Recording{
		ID: rid, Name: f.Name, Device: id.Serial, Officer: officer, Team: o.settings.Team,
		Start: f.Start, End: f.End, Size: f.Size, Class: queue.Patrol, Hold: f.Mark, ClockDrift: d.drift,
	}
	if ok, _ := a.clockTrusted(); !ok {
		rec.ClockUnverified = true
	}
	// The file must not have moved while it was read: a copy that may be of neither version
	// is discarded before it is committed (so no upload can take it), and the camera
	// keeps the file for the next pass.
	unchanged := func(queue.Recording) error {
		if changed(before, path) {
			return fmt.Errorf("%s: %w", f.Name, errChangedDuringCopy)
		}
		return nil
	}
	rec, held, err := o.guardedOffload(ctx, rec, src, readAll, append(beforeCommit, unchanged)...)
	if err == nil && changed(before, path) {
		// Changed after the dock's copy was made (or compared): that copy holds what was
		// read, but the camera's file is no longer it, so it is not deleted.
		err = fmt.Errorf("%s: %w", f.Name, errChangedDuringCopy)
	}
	var conflict *queue.ConflictError
	if err != nil && !errors.As(err, &conflict) {
		if ctx.Err() == nil {
			a.note(queue.Event{Kind: queue.EvInput, Slot: d.slot.index, Device: id.Serial, Recording: rid, Detail: "copy failed, camera keeps it: " + err.Error()})
		}
		return rec, err
	}
	if err != nil || held {
		return rec, err
	}
	a.metrics.offloaded.Inc()
	a.metrics.offloadBytes.Add(float64(rec.Size))
	d.log.Info("recording offloaded", "recording", rid, "bytes", rec.Size, "sha256", rec.SHA256, "hold", rec.Hold)
	a.kick()
	return rec, nil
}

// errChangedDuringCopy means the camera's file changed size or time while it was copied.
var errChangedDuringCopy = errors.New("file changed on the camera during copy")

// changed reports whether the file at path is no longer what before described.
func changed(before os.FileInfo, path string) bool {
	after, err := os.Lstat(path)
	if before == nil || err != nil {
		return before != nil || err == nil
	}
	return after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime())
}

// errCopyStalled means the camera's storage stopped delivering bytes mid-copy.
var errCopyStalled = errors.New("camera storage stalled mid-copy")

// progressReader counts bytes read, for the copy watchdog, and calls readAll once the
// expected size has been read.
type progressReader struct {
	r       io.Reader
	n       atomic.Int64
	size    int64
	readAll func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.n.Add(int64(n)) >= p.size || err != nil {
		p.readAll()
	}
	return n, err
}

// guardedOffload copies (or compares, see queue.Store.Offload) with a progress watchdog:
// storage that stops delivering bytes for the stall timeout fails the copy (the camera
// keeps the recording) instead of holding the bay forever. A read stuck in the kernel is
// abandoned to its goroutine.
func (o *offload) guardedOffload(ctx context.Context, rec queue.Recording, src fs.File, readAll func(), beforeCommit ...func(queue.Recording) error) (queue.Recording, bool, error) {
	a := o.d.a
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var delivered atomic.Bool // the camera has delivered every byte
	pr := &progressReader{r: src, size: rec.Size, readAll: func() { delivered.Store(true); readAll() }}
	type result struct {
		rec  queue.Recording
		held bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, held, err := a.store.Offload(cctx, rec, pr, queue.Event{Kind: queue.EvOffloaded, Slot: o.d.slot.index, Device: o.d.id.Serial}, beforeCommit...)
		done <- result{r, held, err}
	}()
	stall := time.Duration(a.cfg.CopyStall)
	clk := a.timeSource()
	tick, ticks := clk.NewTicker(stall / 4)
	defer tick.Stop()
	last, lastAt := int64(-1), clk.Now()
	for {
		select {
		case r := <-done:
			return r.rec, r.held, r.err
		case <-ticks:
			if n := pr.n.Load(); n != last {
				last, lastAt = n, clk.Now()
				continue
			}
			if delivered.Load() {
				continue // the dock's own fsyncs and commit: a slow spool is not the camera's stall
			}
			if clk.Since(lastAt) >= stall {
				cancel()
				src.Close() // unblocks a read on a pollable file; a hung device read stays behind
				return rec, false, fmt.Errorf("%s: %w after %d bytes (%s without progress)", rec.Name, errCopyStalled, last, stall)
			}
		}
	}
}
