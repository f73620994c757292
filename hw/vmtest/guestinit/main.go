// Command guestinit owns /init of the emulated arm64 dock board (hw/vmtest): gpio-sim bays and
// UART cameras driven through the real hw, one PASS/FAIL line per check. Guest only, never the dock.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/gpioioctl"

	"dock/board"
	"dock/hw"
	"dock/hw/camlink"
	"dock/hw/vmtest"
)

// The agent's own presence settings (agent/config.go, agent/slot.go).
const (
	agentDebounce = 50 * time.Millisecond
	agentPoll     = 2 * time.Second
)

func main() {
	defer powerOff()
	defer func() {
		if r := recover(); r != nil {
			fmt.Printf("FAIL panic %v\n", r)
		}
	}()
	run()
}

func powerOff() {
	fmt.Println(vmtest.Done)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func pass(name, format string, a ...any) {
	fmt.Printf("PASS %s %s\n", name, fmt.Sprintf(format, a...))
}

func fail(name, format string, a ...any) {
	fmt.Printf("FAIL %s %s\n", name, fmt.Sprintf(format, a...))
}

// check prints name's result: PASS with detail when err is nil.
func check(name string, detail string, err error) bool {
	if err != nil {
		fail(name, "%v", err)
		return false
	}
	pass(name, "%s", detail)
	return true
}

func run() {
	for _, m := range []struct{ src, dst, typ string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			fail("modules", "mount %s: %v", m.dst, err)
			return
		}
	}
	var uname unix.Utsname
	_ = unix.Uname(&uname)
	fmt.Printf("guest: kernel %s, %s\n", unix.ByteSliceToString(uname.Release[:]), unix.ByteSliceToString(uname.Machine[:]))

	if !check("modules", "configfs gpio-sim", loadModules()) {
		return
	}
	b := board.CM4Dock
	sim, err := makeChip(b)
	if err == nil {
		err = periphInit()
	}
	if !check("gpio-sim-chip", fmt.Sprintf("%s: %d bays on %s", b.Name, len(b.Slots), sim.dir), err) {
		return
	}
	// A camera already sits in the last bay when the agent starts; the others are empty.
	last := len(b.Slots) - 1
	for i, s := range b.Slots {
		if err := sim.pull(s.Presence, i == last); err != nil {
			fail("lookup", "%v", err)
			return
		}
	}
	bays := make([]hw.SlotLines, len(b.Slots))
	var lerr error
	for i, s := range b.Slots {
		if bays[i], lerr = hw.LookupLines(s.Presence, s.Charge, s.Fault); lerr != nil {
			break
		}
	}
	if !check("lookup", fmt.Sprintf("%d bays by the board's names", len(bays)), lerr) {
		return
	}
	check("init-safe-state", "chargers and LEDs low", initSafe(b, bays, sim))
	check("outputs", "each bay's charge and fault line alone", outputs(b, bays, sim))
	presenceAtStart(b, bays, sim)
	presenceEdges(b, bays, sim)
	debounce(b, bays, sim)
	watchCancel(bays)
	uart()
}

func periphInit() error {
	if _, err := host.Init(); err != nil {
		return fmt.Errorf("periph host.Init: %w", err)
	}
	var labels []string
	for _, c := range gpioioctl.Chips {
		labels = append(labels, c.Name()+"="+c.Label())
		if c.Label() == "dock-sim" {
			fmt.Printf("guest: periph chips %v\n", labels)
			return nil
		}
	}
	return fmt.Errorf("periph lists no chip labelled dock-sim: %v", labels)
}

// expectOutputs checks every bay's charge and fault line against want (a set of pin names
// that must read 1; all others 0).
func expectOutputs(b board.Board, sim *simChip, want map[string]bool) error {
	for i, s := range b.Slots {
		for _, name := range []string{s.Charge, s.Fault} {
			v, err := sim.value(name)
			if err != nil {
				return err
			}
			if exp := map[bool]string{true: "1", false: "0"}[want[name]]; v != exp {
				return fmt.Errorf("bay %d %s reads %s, want %s", i, name, v, exp)
			}
		}
	}
	return nil
}

func initSafe(b board.Board, bays []hw.SlotLines, sim *simChip) error {
	for i, l := range bays {
		if err := l.Init(); err != nil {
			return fmt.Errorf("bay %d: %w", i, err)
		}
	}
	return expectOutputs(b, sim, nil)
}

func outputs(b board.Board, bays []hw.SlotLines, sim *simChip) error {
	for i, s := range b.Slots {
		for _, o := range []struct {
			pin string
			set func(bool) error
		}{{s.Charge, bays[i].SetCharging}, {s.Fault, bays[i].SetFault}} {
			if err := o.set(true); err != nil {
				return err
			}
			if err := expectOutputs(b, sim, map[string]bool{o.pin: true}); err != nil {
				return fmt.Errorf("%s on: %w", o.pin, err)
			}
			if err := o.set(false); err != nil {
				return err
			}
			if err := expectOutputs(b, sim, nil); err != nil {
				return fmt.Errorf("%s off: %w", o.pin, err)
			}
		}
	}
	return nil
}

// next waits up to d for a report on ch. ok is false on a timeout; closed on a closed ch.
func next(ch <-chan bool, d time.Duration) (v, ok, closed bool) {
	select {
	case v, open := <-ch:
		return v, open, !open
	case <-time.After(d):
		return false, false, false
	}
}

func presenceAtStart(b board.Board, bays []hw.SlotLines, sim *simChip) {
	const name = "presence-at-start"
	last := len(bays) - 1
	var levels []string
	for i, l := range bays {
		if want := gpio.Level(i == last); l.Presence.Read() != want {
			fail(name, "bay %d presence reads %s after Init, want %s", i, l.Presence.Read(), want)
			return
		}
		levels = append(levels, l.Presence.Read().String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, ok, _ := next(hw.WatchPresence(ctx, bays[last].Presence, agentDebounce, agentPoll), time.Second)
	if !ok || !v {
		fail(name, "watch of bay %d started with %v (reported: %v), want true", last, v, ok)
		return
	}
	pass(name, "levels %v; bay %d's watch starts docked", levels, last)
}

func presenceEdges(b board.Board, bays []hw.SlotLines, sim *simChip) {
	const name = "presence-edges"
	// A poll of a minute: whatever is seen within a second came through an edge.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pin := b.Slots[0].Presence
	ch := hw.WatchPresence(ctx, bays[0].Presence, agentDebounce, time.Minute)
	if v, ok, _ := next(ch, time.Second); !ok || v {
		fail(name, "first report %v (reported: %v), want false", v, ok)
		return
	}
	var took []string
	for _, up := range []bool{true, false, true, false} {
		start := time.Now()
		if err := sim.pull(pin, up); err != nil {
			fail(name, "%v", err)
			return
		}
		v, ok, _ := next(ch, time.Second)
		if !ok || v != up {
			fail(name, "after pull up=%v: report %v (reported: %v) within 1s", up, v, ok)
			return
		}
		took = append(took, time.Since(start).Round(time.Millisecond).String())
	}
	pass(name, "dock/undock twice seen in %v (debounce %s, poll 1m)", took, agentDebounce)
}

func debounce(b board.Board, bays []hw.SlotLines, sim *simChip) {
	const db = 100 * time.Millisecond
	pin := b.Slots[1].Presence
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := hw.WatchPresence(ctx, bays[1].Presence, db, agentPoll)
	if v, ok, _ := next(ch, time.Second); !ok || v {
		fail("debounce-bounce", "first report %v (reported: %v), want false", v, ok)
		fail("debounce-hold", "not run")
		return
	}
	// bounce toggles the line n times every 5 ms, starting from low.
	// It returns when the last toggle was made.
	bounce := func(n int) (time.Time, error) {
		up, last := false, time.Time{}
		for i := 0; i < n; i++ {
			up = !up
			if err := sim.pull(pin, up); err != nil {
				return time.Time{}, err
			}
			last = time.Now()
			time.Sleep(5 * time.Millisecond)
		}
		return last, nil
	}
	start := time.Now()
	if _, err := bounce(40); err != nil { // ends low, where it started
		fail("debounce-bounce", "%v", err)
		return
	}
	bounced := time.Since(start)
	if v, ok, _ := next(ch, 3*db); ok {
		fail("debounce-bounce", "40 toggles in %s ending low reported %v (debounce %s)", bounced.Round(time.Millisecond), v, db)
	} else {
		pass("debounce-bounce", "40 toggles in %s, ending where they started: nothing reported (debounce %s)", bounced.Round(time.Millisecond), db)
	}
	last, err := bounce(41) // ends high, and stays
	if err != nil {
		fail("debounce-hold", "%v", err)
		return
	}
	v, ok, _ := next(ch, time.Second)
	after := time.Since(last)
	if !ok || !v {
		fail("debounce-hold", "41 toggles ending high, held: report %v (reported: %v) within 1s", v, ok)
		return
	}
	if extra, more, _ := next(ch, 5*db); more {
		fail("debounce-hold", "a second report %v after the first", extra)
		return
	}
	if after < db {
		fail("debounce-hold", "reported %s after the last toggle, before the debounce %s", after.Round(time.Millisecond), db)
		return
	}
	pass("debounce-hold", "one report, %s after the last toggle (debounce %s)", after.Round(time.Millisecond), db)
}

func watchCancel(bays []hw.SlotLines) {
	const name = "watch-cancel"
	ctx, cancel := context.WithCancel(context.Background())
	ch := hw.WatchPresence(ctx, bays[2].Presence, agentDebounce, agentPoll)
	if _, ok, _ := next(ch, time.Second); !ok {
		fail(name, "no first report")
		cancel()
		return
	}
	time.Sleep(100 * time.Millisecond) // the watch now waits for an edge
	start := time.Now()
	cancel()
	limit := agentPoll + time.Second
	deadline := time.After(limit)
	for {
		select {
		case _, open := <-ch:
			if open {
				continue
			}
			pass(name, "closed %s after cancel (poll %s: a pending wait for an edge is not interrupted)", time.Since(start).Round(time.Millisecond), agentPoll)
			return
		case <-deadline:
			fail(name, "still open %s after cancel", limit)
			return
		}
	}
}

func uart() {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	open := func(name, path string, timeout time.Duration, retries int) *camlink.Link {
		p, err := camlink.OpenSerial(path, 115200)
		if err != nil {
			fail(name, "%v", err)
			return nil
		}
		return camlink.NewLink(p, timeout, retries, log)
	}

	// ttyS0: a healthy camera whose every reply follows some noise.
	if l := open("uart-camera", "/dev/ttyS0", 2*time.Second, 2); l != nil {
		err := func() error {
			id, err := l.Identify(ctx)
			if err != nil {
				return err
			}
			if id.Serial != "VM-CAM-0" {
				return fmt.Errorf("identify: serial %q, want VM-CAM-0", id.Serial)
			}
			bat, err := l.Battery(ctx)
			if err != nil {
				return err
			}
			st, err := l.Storage(ctx)
			if err != nil {
				return err
			}
			ls, err := l.List(ctx, camlink.ListLimits{})
			if err != nil {
				return err
			}
			if len(ls.Files) != 3 || len(ls.Refused) != 0 {
				return fmt.Errorf("list: %d files, %d refused, want 3 and 0", len(ls.Files), len(ls.Refused))
			}
			drift, err := l.SetClock(ctx, time.Now())
			if err != nil {
				return err
			}
			pass("uart-camera", "%s %s: battery %d%%, %d GiB free, %d recordings, drift %s", id.Serial, id.Model, bat.ChargePct, st.FreeBytes>>30, len(ls.Files), drift.Round(time.Millisecond))
			return nil
		}()
		if err != nil {
			fail("uart-camera", "%v", err)
			fail("uart-garbage-between", "not run")
		} else if _, n := l.Garbage(); n == 0 {
			fail("uart-garbage-between", "no noise counted: the host's noise never arrived")
		} else {
			pass("uart-garbage-between", "%d noise bytes discarded, every call answered", n)
		}
		l.Close()
	}

	// ttyS1 answers garbage, ttyS2 nothing: the link must give up in bounded time.
	for _, c := range []struct{ name, path string }{{"uart-garbage-camera", "/dev/ttyS1"}, {"uart-silent-camera", "/dev/ttyS2"}} {
		const timeout, retries = 500 * time.Millisecond, 1
		l := open(c.name, c.path, timeout, retries)
		if l == nil {
			continue
		}
		start := time.Now()
		_, err := l.Identify(ctx)
		took := time.Since(start)
		kept, n := l.Garbage()
		cstart := time.Now()
		l.Close()
		closed := time.Since(cstart)
		bound := timeout*(retries+1) + time.Second
		switch {
		case !errors.Is(err, camlink.ErrNoReply):
			fail(c.name, "identify: %v, want ErrNoReply", err)
		case took > bound:
			fail(c.name, "identify gave up after %s, more than %s", took, bound)
		case closed > time.Second:
			fail(c.name, "close took %s", closed)
		case c.name == "uart-garbage-camera" && n == 0:
			fail(c.name, "no garbage counted")
		case c.name == "uart-silent-camera" && n != 0:
			fail(c.name, "%d bytes of garbage from a silent camera: %q", n, kept)
		default:
			pass(c.name, "%v after %s; %d garbage bytes kept; closed in %s", err, took.Round(time.Millisecond), n, closed.Round(time.Millisecond))
		}
	}
}
