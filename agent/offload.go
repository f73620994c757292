package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"dock/health"
	"dock/hw"
	"dock/hw/camlink"
	"dock/queue"
)

// offloadOutcome is what the last offload of a docking left on the camera, for the health
// rules.
type offloadOutcome struct {
	readErrors int
	readWhy    string // the last read error
	leftOn     int    // recordings and refused entries still on the camera
	leftWhy    string // why the camera kept some it was asked to delete
}

// offload copies every recording off the camera into the spool and frees the camera's
// copy once the dock's is durable (or, by policy, verified by central).
func (d *docking) offload(ctx context.Context) {
	if err := unlockStorage(ctx, d.link, d.a.cfg, d.id.Serial); err != nil {
		d.storageFailed(ctx, "unlock storage", err)
		return
	}
	listing, err := d.link.List(ctx, camlink.ListLimits{})
	if err != nil {
		d.storageFailed(ctx, "list recordings", err)
		return
	}
	if len(listing.Files) > 0 {
		if err := d.waitStorage(ctx); err != nil {
			d.storageFailed(ctx, "storage not mounted", err)
			return
		}
	}
	d.mu.Lock()
	d.storageErr = ""
	d.mu.Unlock()
	d.refusedEntries(listing)
	o := &offload{d: d, settings: d.a.Settings(), files: listing.Files}
	t := o.run(ctx)
	if ctx.Err() != nil {
		return
	}
	out := offloadOutcome{readErrors: t.readErrors, leftOn: t.left + len(listing.Refused)}
	if t.readErrors > 0 {
		out.readWhy = t.lastReadErr.Error()
	}
	if refused := t.left - t.kept - t.readErrors; refused > 0 {
		out.leftWhy = fmt.Sprintf("the camera refused to delete %d: %v", refused, t.lastErr)
	}
	d.mu.Lock()
	d.offloaded = out
	d.mu.Unlock()
}

// storageWait is how long a camera's storage may take to appear at the bay's mount once
// unlocked: its disk enumerates on the USB and udev mounts it after the unlock (seconds on
// the carriers and on the emulated board, build/vm).
const storageWait = 30 * time.Second

// waitStorage waits until the bay's mount shows the camera's storage: a directory with
// something in it (the camera listed recordings, so an empty one is a mount point not yet
// mounted).
func (d *docking) waitStorage(ctx context.Context) error {
	clk := d.a.timeSource()
	unlocked := clk.Now()
	for {
		err := storageMounted(d.slot.def.Mount)
		if err == nil {
			if w := clk.Since(unlocked); w >= time.Second {
				d.log.Info("camera storage appeared", "after", w.Round(time.Millisecond))
			}
			return nil
		}
		if clk.Since(unlocked) >= storageWait {
			return fmt.Errorf("%s after %s: %w", d.slot.def.Mount, storageWait, err)
		}
		timer, fired := clk.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-fired:
		}
	}
}

// storageMounted says whether dir holds anything, reading no more than one name of it.
func storageMounted(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("nothing there yet")
		}
		return err
	}
	return nil
}

// storageFailed records that the camera's storage could not be unlocked or listed.
func (d *docking) storageFailed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	d.log.Error("camera storage unreadable", "step", what, "err", err)
	d.a.note(queue.Event{Kind: queue.EvInput, Slot: d.slot.index, Device: d.id.Serial, Detail: what + ": " + err.Error()})
	d.mu.Lock()
	d.storageErr = what + ": " + err.Error()
	d.mu.Unlock()
}

// refusedEntries reports the entries of a camera's listing that failed the dock's
// checks: each is written to the ledger and named in the camera's storage-entry-refused
// fault, an advisory one: the camera stays in service and its other recordings are
// offloaded. The refused entries stay on the camera.
func (d *docking) refusedEntries(listing camlink.Listing) {
	slot, device := d.slot.index, d.id.Serial
	var detail []string
	for _, r := range listing.Refused {
		why := fmt.Sprintf("listing entry %q refused, left on the camera: %s", r.Name, r.Why)
		d.log.Warn("camera listing entry refused", "entry", fmt.Sprintf("%q", r.Name), "why", r.Why)
		d.a.note(queue.Event{Kind: queue.EvInput, Slot: slot, Device: device, Detail: why})
		if len(detail) < 10 {
			detail = append(detail, fmt.Sprintf("%q: %s", r.Name, r.Why))
		}
	}
	if listing.Truncated != "" {
		d.a.note(queue.Event{Kind: queue.EvInput, Slot: slot, Device: device, Detail: "listing cut short, the rest stays on the camera for the next docking: " + listing.Truncated})
	}
	if len(listing.Refused) == 0 {
		return
	}
	msg := fmt.Sprintf("%d entries of the camera's listing refused and left on it: %s", len(listing.Refused), strings.Join(detail, "; "))
	if len(listing.Refused) > len(detail) {
		msg += fmt.Sprintf("; and %d more (see the ledger)", len(listing.Refused)-len(detail))
	}
	d.a.raise(slot, device, health.Verdict{Code: health.EntryRefused, Detail: msg})
}

// offload is one pass over the files a docked camera listed: each is copied into the
// spool (or compared with the dock's copy), and the camera's copy is deleted once the
// dock's is durable.
type offload struct {
	d        *docking
	settings Settings // as they were when the pass began
	files    []camlink.FileEntry
}

// offloadTally counts what one pass left on the camera, and why.
type offloadTally struct {
	readErrors  int // files that could not be read
	kept        int // files the dock chose to leave (policy, spool full, refused path)
	left        int // every file still on the camera: kept, unread or not deleted
	lastErr     error
	lastReadErr error
}

// run copies the files, one read ahead of the commit before it, hands each durable copy
// to the deleter, and returns the tally once every copy and delete has been answered.
func (o *offload) run(ctx context.Context) offloadTally {
	var t offloadTally
	if len(o.files) == 0 {
		return t
	}
	s := o.d.slot
	if s.currentState() != Offloading {
		if err := s.move(EvOffload, fmt.Sprintf("%d recordings on camera", len(o.files))); err != nil {
			o.d.log.Error("slot", "err", err)
			return t
		}
	}
	// The camera's copies are deleted by a goroutine of their own, so the next recording is
	// read while the last one is freed over the serial link; all are answered before the
	// tally is returned.
	frees := make(chan freeing, len(o.files))
	freed := make(chan freeTally, 1)
	go func() { freed <- o.freeCameraCopies(ctx, frees) }()
	copies, stopCopies := o.copyAhead(ctx)
	t = o.take(ctx, copies, frees)
	stopCopies()
	close(frees)
	ft := <-freed
	t.left += ft.left
	if ft.lastErr != nil {
		t.lastErr = ft.lastErr
	}
	return t
}

// take takes each file's copy in order and passes the ones the camera may lose to frees.
func (o *offload) take(ctx context.Context, copies []chan copied, frees chan<- freeing) offloadTally {
	var t offloadTally
	for i, f := range o.files {
		if ctx.Err() != nil {
			return t
		}
		c := <-copies[i]
		rid, rec, err := c.rid, c.rec, c.err
		if errors.Is(err, errSpoolFull) {
			o.d.log.Warn("offload paused: spool at its reserve; footage stays on the camera")
			t.left, t.kept = len(o.files), len(o.files) // the dock's choice, under the spool-full fault
			return t
		}
		if err != nil {
			if ctx.Err() == nil && o.d.slot.lines.Presence.Read() == gpio.Low {
				return t // pulled out: the session ends, nothing is the camera's fault
			}
			if errors.Is(err, hw.ErrRefusedPath) {
				// A link or a file that is not regular: refused like a bad listing entry.
				o.d.refusedEntries(camlink.Listing{Refused: []camlink.Refused{{Name: f.Name, Why: err.Error()}}})
				t.left, t.kept = t.left+1, t.kept+1 // kept: the dock's choice, under its own fault
				continue
			}
			if ctx.Err() == nil {
				o.d.log.Error("offload", "recording", f.Name, "err", err)
				t.readErrors, t.lastReadErr = t.readErrors+1, err
				t.left++
			}
			continue
		}
		// The dock's copy is durable (file, directory and the synced Badger commit).
		if o.settings.DeleteAfterReceipt && rec.State != queue.Verified && rec.State != queue.Freed {
			t.left, t.kept = t.left+1, t.kept+1
			continue // policy: the camera keeps it until central's receipt
		}
		frees <- freeing{name: f.Name, size: f.Size, rid: rid, sha: rec.SHA256, state: rec.State}
	}
	return t
}

// freeing is a camera copy to delete: the dock's copy of it is durable.
type freeing struct {
	name  string
	size  int64
	rid   string
	sha   string
	state queue.State
}

// freeTally is what the deletes of one offload left on the camera.
type freeTally struct {
	left    int
	lastErr error
}

// freeCameraCopies deletes each camera copy it is given until frees is closed.
func (o *offload) freeCameraCopies(ctx context.Context, frees <-chan freeing) freeTally {
	d := o.d
	var t freeTally
	for fr := range frees {
		// The ledger says what is about to happen before it happens: a delete that
		// cannot be recorded does not take place, and the camera keeps its copy.
		if err := d.a.note(queue.Event{Kind: queue.EvCameraFreeing, Slot: d.slot.index, Device: d.id.Serial, Recording: fr.rid,
			Detail: fmt.Sprintf("deleting %s from the camera: the dock's copy (%s) holds sha256 %s, the bytes read from the camera in this docking", fr.name, fr.state, fr.sha)}); err != nil {
			t.left, t.lastErr = t.left+1, err
			continue
		}
		if err := d.link.Delete(ctx, fr.name, fr.size); err != nil {
			d.log.Warn("camera copy not freed", "recording", fr.name, "err", err)
			t.left, t.lastErr = t.left+1, err
			d.a.note(queue.Event{Kind: queue.EvInput, Slot: d.slot.index, Device: d.id.Serial, Recording: fr.rid, Detail: "camera refused to delete " + fr.name + ": " + err.Error()})
			continue
		}
		d.a.note(queue.Event{Kind: queue.EvCameraFree, Slot: d.slot.index, Device: d.id.Serial, Recording: fr.rid, Detail: "camera copy deleted; dock copy " + string(fr.state)})
	}
	return t
}

// copied is the outcome of one recording in an offload: the dock's copy, or why none.
type copied struct {
	rid string
	rec queue.Recording
	err error
}

// copyAhead copies the camera's files into the spool in order, each started as soon as the
// camera has delivered the last byte of the one before, so that one's commit (fsyncs and
// the Badger transaction) overlaps the next read instead of leaving the camera idle. Each
// file's outcome comes on its own channel; stop cancels what is left and waits for it.
func (o *offload) copyAhead(ctx context.Context) (outcomes []chan copied, stop func()) {
	cctx, cancel := context.WithCancel(ctx)
	outcomes = make([]chan copied, len(o.files))
	for i := range outcomes {
		outcomes[i] = make(chan copied, 1)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, f := range o.files {
			rid := queue.RecordingID(o.d.id.Serial, f.Name, f.Start, f.Size)
			if cctx.Err() != nil {
				outcomes[i] <- copied{rid: rid, err: cctx.Err()}
				continue
			}
			if rec, err := o.d.a.store.Get(rid); err == nil && o.settings.DeleteAfterReceipt && rec.State != queue.Verified && rec.State != queue.Freed {
				// Policy keeps the camera's copy until central's receipt: nothing to read
				// yet. The bytes are compared when the copy may go.
				outcomes[i] <- copied{rid, rec, nil}
				continue
			}
			read := make(chan struct{})
			var once sync.Once
			readAll := func() { once.Do(func() { close(read) }) }
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec, err := o.copyOrCompare(cctx, f, rid, readAll)
				readAll()
				outcomes[i] <- copied{rec.ID, rec, err}
			}()
			<-read
		}
	}()
	return outcomes, func() { cancel(); wg.Wait() }
}

// errSpoolFull means the spool would fall under its reserve.
var errSpoolFull = errors.New("spool full")
