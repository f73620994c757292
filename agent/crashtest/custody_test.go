package crashtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/mqtttest"
)

// TestCustody is the adversarial end-to-end property test of custody (issue #13). Each run
// draws from one seed: 2-4 simulated cameras holding awkward footage (0 and 1 byte, sizes
// at central's 64 KiB chunks, at 8 chunks and at 1 MiB, ±1; unicode, spaces, quotes and DCF
// folders in names; ids that collide once the serial is joined to the name, camera BC01A's
// "X_VID.mp4" against camera BC01A_X's "VID.mp4"; one name and size on two cameras; twins
// of one size a byte apart; a name that comes round again, same size, other bytes, once the
// dock has deleted it from the camera), and a timeline of docks, undocks, re-docks and
// SIGKILLs of the agent (docksim: the real agent on the simulated dock), of central (the
// reference receiver, a process of its own) and of both at once, two in three aimed at an
// upload or a copy in progress. After every kill, and at the end, it checks the custody
// invariant on every file version the test ever put on a camera:
//
//   - it is at central exactly once, filed under its own camera, name and officer (central's
//     stored metadata), the stored file hashing to its bytes; or still on its camera; or
//     durable in the dock's spool (a record of its camera, name and hash whose spool copy
//     reads back). So nothing was freed, on the camera or the dock, without a copy that
//     holds. (The dock is read only while the agent is dead: after a kill of it.)
//   - central holds nothing misfiled, corrupt or twice; the dock records nothing that was
//     never a camera file; no camera file was changed; the dock's ledger verifies.
//   - once the kills stop, within custodyDrain (60 s, again after each late name reuse)
//     every version is at central, the cameras are empty and the dock's queue is drained.
//
// It never relies on the recording id's format: copies are matched by their metadata and
// their bytes. Central signs with a key whose public half docksim is given.
//
// The seed is printed; DOCK_SEED=<n> replays that run (the same cameras, footage and
// timeline; the processes' own timing differs). Three runs in the normal test (two here, one
// with power cuts), 200 with DOCK_LONG set (150 and 50), DOCK_RUNS=<n> to choose. With
// DOCK_KEEP_GOING set a run reports every new violation and goes on instead of stopping
// at the first; DOCK_KEEP=<dir> keeps the processes' logs there; DOCK_KILLS=<n> overrides
// the seed's number of kills.
func TestCustody(t *testing.T) { custody(t, false) }

// TestCustodyPowerCut is TestCustody with the dock's data directory and central's store each
// on its own LazyFS: every kill of a side is also a power cut of its disk, so every byte it
// had not synced is gone before it restarts. It needs root and /dev/fuse.
func TestCustodyPowerCut(t *testing.T) { custody(t, true) }

const (
	// custodyDrain bounds how long, after the last disturbance, the queue may take to drain
	// and the cameras to empty.
	custodyDrain = 60 * time.Second
)

// custodyKills is how many kills (of the agent, central or both) a run deals: 2 to 4 drawn
// from the seed (-1), or DOCK_KILLS=<n>.
func custodyKills() int {
	if n, err := strconv.Atoi(os.Getenv("DOCK_KILLS")); err == nil {
		return n
	}
	return -1
}

// custodyRuns returns the seeds to run: DOCK_SEED alone, or DOCK_RUNS (default: 2 with
// SIGKILLs, 1 with power cuts; with DOCK_LONG 150 and 50) seeds drawn from the clock.
func custodyRuns(t *testing.T, powerCut bool) []uint64 {
	if s := os.Getenv("DOCK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DOCK_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	n := 2
	if powerCut {
		n = 1
	}
	if os.Getenv("DOCK_LONG") != "" {
		n = 150 // and 50 with power cuts: 200 runs
		if powerCut {
			n = 50
		}
	}
	if s := os.Getenv("DOCK_RUNS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("DOCK_RUNS=%q: %v", s, err)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = rng.Uint64() % 1e12 // short enough to type
	}
	return seeds
}

// custodyBins are the programs a run starts, built once.
type custodyBins struct{ docksim, central, lazyfsd string }

func custody(t *testing.T, powerCut bool) {
	if powerCut {
		if os.Getuid() != 0 {
			t.Skip("skipped: lazyfs mounts FUSE directly, which needs root")
		}
		f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
		if err != nil {
			t.Skipf("skipped: no usable /dev/fuse on this machine: %v", err)
		}
		f.Close()
	}
	if _, err := mqtttest.Binary(); err != nil && os.Getenv("CI") == "" {
		t.Skipf("skipped: %v", err)
	}
	seeds := custodyRuns(t, powerCut)
	binDir := t.TempDir()
	bins := custodyBins{docksim: buildHost(t, binDir, "docksim"), central: buildHost(t, binDir, "central")}
	if powerCut {
		bins.lazyfsd = buildHostPkg(t, binDir, "dock/agent/crashtest/lazyfsd")
	}
	name := "TestCustody"
	if powerCut {
		name = "TestCustodyPowerCut"
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := &custodyRun{t: t, bins: bins, powerCut: powerCut,
				replay: fmt.Sprintf("DOCK_SEED=%d go test -count=1 -run '%s$' ./agent/crashtest/ -v", seed, name)}
			r.run(seed)
		})
	}
}

// custodyRun is one seed's run.
type custodyRun struct {
	t        *testing.T
	bins     custodyBins
	powerCut bool
	replay   string

	sc                  *scenario
	dir, runDir         string
	storeDir, dockDir   string
	keyFile, brokerURL  string
	agentLog, centLog   string
	dockDisk, centDisk  *lazyDisk
	dock                *dockProc
	central             *proc
	rng                 *rand.Rand
	t0                  time.Time
	events              []string
	kills, lostUnsynced int64
	pendingReuse        []*version
	seen                map[string]bool // violations reported (DOCK_KEEP_GOING)
	key                 centralKey      // central signs with it, the dock trusts it
	vacated             [4]time.Time    // when each bay was last emptied
}

func (r *custodyRun) logf(format string, args ...any) {
	e := fmt.Sprintf("%7.3fs  ", time.Since(r.t0).Seconds()) + fmt.Sprintf(format, args...)
	r.events = append(r.events, e)
}

// fatal ends the run with everything needed to understand and replay it.
func (r *custodyRun) fatal(format string, args ...any) {
	r.t.Helper()
	msg := r.header() + fmt.Sprintf(format, args...) + r.story()
	r.stopAll()
	r.t.Fatal(msg)
}

func (r *custodyRun) header() string {
	return fmt.Sprintf("CUSTODY BROKEN, seed %d (power cut %v)\n  replay: %s\n\n", r.sc.Seed, r.powerCut, r.replay)
}

// story is what happened in the run, and what the processes' logs say went wrong.
func (r *custodyRun) story() string {
	var b strings.Builder
	b.WriteString("\n\nwhat happened:\n  " + strings.Join(r.events, "\n  "))
	for _, l := range []struct{ name, path string }{{"agent (docksim)", r.agentLog}, {"central", r.centLog}} {
		log, _ := os.ReadFile(l.path)
		if c := crashes(string(log)); c != "" {
			fmt.Fprintf(&b, "\n\n%s crashed:\n%s", l.name, c)
		}
		fmt.Fprintf(&b, "\n\n%s log, errors and warnings (last 30):\n%s", l.name, lastMatching(string(log), 30, `"level":"ERROR"`, `"level":"WARN"`, "===", "panic"))
	}
	return b.String()
}

// lastMatching returns the last n distinct lines of log that contain any of the words,
// each cut to 400 bytes; a line repeated but for its time is shown once with its count.
func lastMatching(log string, n int, words ...string) string {
	var out []string
	count := map[string]int{}
	for _, l := range strings.Split(log, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				if len(l) > 400 {
					l = l[:400] + "…"
				}
				key := timeField.ReplaceAllString(l, "")
				if count[key]++; count[key] == 1 {
					out = append(out, key)
				}
				break
			}
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	for i, k := range out {
		out[i] = "  " + k
		if c := count[k]; c > 1 {
			out[i] += fmt.Sprintf("  (×%d)", c)
		}
	}
	return strings.Join(out, "\n")
}

var timeField = regexp.MustCompile(`"time":"[^"]*",`)

func (r *custodyRun) stopAll() {
	if r.dock != nil {
		r.dock.kill()
	}
	if r.central != nil {
		r.central.kill()
	}
}

func (r *custodyRun) run(seed uint64) {
	t := r.t
	r.t0 = time.Now()
	r.sc = newScenario(seed, custodyKills())
	r.rng = rand.New(rand.NewPCG(seed, 0xd0c))
	t.Logf("seed %d; replay: %s", seed, r.replay)
	t.Logf("scenario:\n%s", r.sc.describe())

	r.dir = t.TempDir()
	r.runDir = filepath.Join(r.dir, "run")
	r.dockDir = filepath.Join(r.runDir, "dock")
	r.storeDir = filepath.Join(r.dir, "central")
	r.keyFile = filepath.Join(r.runDir, "keys", "spool.key")
	r.agentLog, r.centLog = filepath.Join(r.dir, "agent.log"), filepath.Join(r.dir, "central.log")
	if err := os.MkdirAll(r.runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if r.powerCut {
		r.dockDisk, r.centDisk = mountLazyBin(t, r.bins.lazyfsd), mountLazyBin(t, r.bins.lazyfsd)
		if err := os.Symlink(r.dockDisk.Mount, r.dockDir); err != nil {
			t.Fatal(err)
		}
		r.storeDir = r.centDisk.Mount
	}
	// Registered after the mounts: the processes die before their disks go.
	t.Cleanup(r.stopAll)
	if err := r.sc.makeCameras(r.runDir); err != nil {
		t.Fatal(err)
	}
	r.pendingReuse = append(r.pendingReuse, r.sc.Reuses...)
	// Central signs what it sends the dock; the dock trusts its public half.
	r.key = newCentralKey(t, filepath.Join(r.dir, "central-key"))
	r.brokerURL = mqtttest.Start(t, "").URL
	r.startCentral()
	r.startDock()

	// The chaos phase.
	actions := append([]action(nil), r.sc.Actions...)
	for len(actions) > 0 {
		a := actions[0]
		actions = actions[1:]
		if d := time.Until(r.t0.Add(a.At)); d > 0 {
			time.Sleep(d)
		}
		r.checkAlive()
		if !r.do(a) && a.Kind == actReuse && a.At+time.Second < r.sc.Chaos {
			// The old file is still on the camera: try again later.
			a.At = time.Since(r.t0) + time.Second
			i := 0
			for i < len(actions) && actions[i].At <= a.At {
				i++
			}
			actions = append(actions[:i], append([]action{a}, actions[i:]...)...)
		}
	}

	// The drain: every camera seated, both ends up, no more kills.
	r.logf("chaos over: %d kills; draining", r.kills)
	for i, c := range r.sc.Cams {
		if c.slot < 0 {
			r.do(action{Kind: actDock, Cam: i})
		}
	}
	r.drain()
	if keep := os.Getenv("DOCK_KEEP"); keep != "" {
		// The processes' logs, for a look at a run that passed.
		for _, l := range []string{r.agentLog, r.centLog} {
			if b, err := os.ReadFile(l); err == nil {
				_ = os.WriteFile(filepath.Join(keep, fmt.Sprintf("%d-%s", seed, filepath.Base(l))), b, 0o644)
			}
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("custody held: %d kills (power cut %v, %d unsynced bytes lost), %d file versions at central exactly once, cameras empty, queue drained, in %v",
		r.kills, r.powerCut, r.lostUnsynced, len(r.sc.Versions), time.Since(r.t0).Round(time.Millisecond))
	t.Logf("what happened:\n  %s", strings.Join(r.events, "\n  "))
}

func (r *custodyRun) startCentral() {
	args := []string{"-broker", r.brokerURL, "-store", r.storeDir, "-client", "central-custody",
		"-chunk", strconv.Itoa(custodyChunk), "-window", "8", "-signing-key", r.key.File}
	if r.sc.CentralRate > 0 {
		args = append(args, "-rate", strconv.FormatInt(r.sc.CentralRate, 10))
	}
	p, err := startProc("central", r.centLog, nil, r.bins.central, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.central = p
	r.logf("central started")
}

// startDock starts docksim and seats again the cameras that are in the dock: they stayed in
// their bays while the dock was down.
func (r *custodyRun) startDock() {
	d, err := startDock(r.bins.docksim, r.runDir, r.brokerURL, r.agentLog, "-central-key", r.key.Public)
	if err != nil {
		r.t.Fatal(err)
	}
	r.dock = d
	var lines, seated []string
	for _, c := range r.sc.Cams {
		lines = append(lines, "camera "+c.Serial)
		if c.slot >= 0 {
			lines = append(lines, fmt.Sprintf("dock %d %s", c.slot, c.Serial))
			seated = append(seated, fmt.Sprintf("%s in %d", c.Serial, c.slot))
		}
	}
	if err := d.send(lines...); err != nil {
		r.fatal("docksim: %v", err)
	}
	r.logf("agent started, cameras seated: %s", strings.Join(seated, ", "))
}

// checkAlive fails the run if a process ended by itself, or if the agent refuses central's
// messages as unsigned (the harness, not custody, is then at fault).
func (r *custodyRun) checkAlive() {
	if log, _ := os.ReadFile(r.agentLog); strings.Contains(string(log), "not signed by central's key") || strings.Contains(string(log), "no central_key configured") {
		r.fatal("HARNESS: the agent refuses central's messages as not signed by the key it was given (docksim -central-key, central -signing-key)")
	}
	if r.dock.died() {
		r.fatal("AGENT EXITED BY ITSELF: docksim ended with %v", r.dock.err)
	}
	if r.central.died() {
		r.fatal("CENTRAL EXITED BY ITSELF: central ended with %v", r.central.err)
	}
}

// do carries out one action; a reuse whose old file is still on the camera is not done
// (false).
func (r *custodyRun) do(a action) bool {
	switch a.Kind {
	case actDock:
		c := r.sc.Cams[a.Cam]
		if c.slot >= 0 {
			return true
		}
		c.slot = r.freeSlot()
		// The camera is read again from its disk first: the test may have put files on it.
		if err := r.dock.send("camera "+c.Serial, fmt.Sprintf("dock %d %s", c.slot, c.Serial)); err != nil {
			r.fatal("docksim: %v", err)
		}
		r.logf("dock %s in slot %d", c.Serial, c.slot)
	case actUndock:
		c := r.sc.Cams[a.Cam]
		if c.slot < 0 {
			return true
		}
		if err := r.dock.send(fmt.Sprintf("undock %d", c.slot)); err != nil {
			r.fatal("docksim: %v", err)
		}
		r.logf("undock %s from slot %d", c.Serial, c.slot)
		r.vacated[c.slot] = time.Now()
		c.slot = -1
	case actKillAgent, actKillBoth, actKillCentral:
		r.kills++
		agent, cent := a.Kind != actKillCentral, a.Kind != actKillAgent
		aimed := r.aim(agent)
		if agent {
			r.dock.kill()
		}
		if cent {
			r.central.kill()
		}
		r.logf("SIGKILL %s%s", map[actionKind]string{actKillAgent: "agent", actKillCentral: "central", actKillBoth: "agent and central"}[a.Kind], aimed)
		if r.powerCut {
			for _, d := range []struct {
				on   bool
				disk *lazyDisk
				what string
			}{{agent, r.dockDisk, "dock"}, {cent, r.centDisk, "central"}} {
				if !d.on {
					continue
				}
				n, err := d.disk.PowerCut()
				if err != nil {
					r.fatal("power cut of the %s's disk: %v", d.what, err)
				}
				r.lostUnsynced += n
				r.logf("power cut on the %s's disk: %d unsynced bytes lost", d.what, n)
			}
		}
		r.check(fmt.Sprintf("after %s", a.Kind), agent, false)
		if cent {
			// Central stays down a moment: the dock must wait for it, not give up.
			if d := time.Duration(r.rng.IntN(1500)) * time.Millisecond; d > 0 && !agent {
				time.Sleep(d)
			}
			r.startCentral()
		}
		if agent {
			r.startDock()
		}
	case actReuse:
		return r.reuse(a.V)
	}
	return true
}

// aim waits, two kills in three, up to 2 s for a moment worth a kill: an upload in
// progress at central (a part file in its incoming/), or, when the agent is to die, a
// recording being copied into the dock's spool (a file in spool/tmp). It says what it
// found.
func (r *custodyRun) aim(agent bool) string {
	if r.rng.IntN(3) == 0 {
		return ""
	}
	busy := func() string {
		var part string
		_ = filepath.WalkDir(filepath.Join(r.storeDir, "incoming"), func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".part") {
				if info, err := d.Info(); err == nil && info.Size() > 0 {
					part = filepath.Base(p)
					return filepath.SkipAll
				}
			}
			return nil
		})
		if part != "" {
			return "mid-upload of " + part
		}
		if agent {
			if tmps, _ := os.ReadDir(filepath.Join(r.dockDir, "spool", "tmp")); len(tmps) > 0 {
				return "mid-copy of " + tmps[0].Name()
			}
		}
		return ""
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if b := busy(); b != "" {
			// Somewhere in the next few milliseconds of it.
			time.Sleep(time.Duration(r.rng.IntN(30)) * time.Millisecond)
			return " (aimed: " + b + ")"
		}
	}
	return " (aimed: nothing in progress)"
}

// slotRest is how long a bay stays empty before another camera goes in: a swap faster than
// a hand can make it (and than the presence line's debounce) is not a swap the dock sees.
const slotRest = 500 * time.Millisecond

// freeSlot picks an empty bay that has rested, waiting for one if need be.
func (r *custodyRun) freeSlot() int {
	for {
		var free []int
		for s := 0; s < 4; s++ {
			taken := false
			for _, c := range r.sc.Cams {
				taken = taken || c.slot == s
			}
			if !taken && time.Since(r.vacated[s]) >= slotRest {
				free = append(free, s)
			}
		}
		if len(free) > 0 {
			return free[r.rng.IntN(len(free))]
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reuse puts a later version of a name on its camera once the earlier one has left it:
// the camera comes out of the dock, the file appears, the camera goes back in.
func (r *custodyRun) reuse(v *version) bool {
	c := r.sc.cam(v.Serial)
	if _, err := os.Lstat(filepath.Join(c.footage(), filepath.FromSlash(v.Name))); err == nil {
		return false
	}
	for i, p := range r.pendingReuse {
		if p == v {
			r.pendingReuse = append(r.pendingReuse[:i], r.pendingReuse[i+1:]...)
			break
		}
		if p.Serial == v.Serial && p.Name == v.Name {
			return false // an earlier generation of this name goes first
		}
	}
	docked := c.slot >= 0
	if docked {
		r.do(action{Kind: actUndock, Cam: r.camIndex(c)})
	}
	// docksim has carried out the undock and answers nothing more for this camera.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := r.dock.sync(ctx)
	cancel()
	if err != nil {
		r.fatal("docksim: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := r.sc.put(v); err != nil {
		r.fatal("reuse: %v", err)
	}
	r.logf("camera %s recorded %q again (gen %d, %d bytes, sha256 %s)", v.Serial, v.Name, v.Gen, v.Size, short(v.SHA))
	if docked {
		r.do(action{Kind: actDock, Cam: r.camIndex(c)})
	}
	return true
}

func (r *custodyRun) camIndex(c *camPlan) int {
	for i, x := range r.sc.Cams {
		if x == c {
			return i
		}
	}
	return -1
}

// check takes a census and fails the run on any violation. inspectDock needs the agent
// dead. With DOCK_KEEP_GOING set, each new violation is an error and the run goes on, to
// see what else breaks.
func (r *custodyRun) check(when string, inspectDock, final bool) int {
	c := r.sc.takeCensus(r.storeDir, r.dockDir, r.keyFile, inspectDock)
	r.logf("check %s: %s", when, r.sc.summary(c))
	problems := r.sc.judge(c, final)
	if len(problems) == 0 {
		return 0
	}
	if os.Getenv("DOCK_KEEP_GOING") == "" {
		r.fatal("%d violation(s) %s:\n\n%s", len(problems), when, strings.Join(problems, "\n\n"))
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	for _, p := range problems {
		first, _, _ := strings.Cut(p, "\n")
		if !r.seen[first] {
			r.seen[first] = true
			r.logf("VIOLATION %s", first)
			r.t.Errorf("%sviolation %s:\n%s", r.header(), when, p)
		}
	}
	return len(problems)
}

// drain waits, with both ends up and no more kills, until every version is at central, the
// cameras are empty and the dock's queue is drained, within custodyDrain of the last
// disturbance; it puts the name reuses that are still due on the cameras as their names
// come free.
func (r *custodyRun) drain() {
	deadline := time.Now().Add(custodyDrain)
	last := ""
	for {
		r.checkAlive()
		for _, v := range append([]*version(nil), r.pendingReuse...) {
			if r.reuse(v) {
				deadline = time.Now().Add(custodyDrain)
			}
		}
		c := r.sc.takeCensus(r.storeDir, r.dockDir, r.keyFile, false)
		if sum := r.sc.summary(c); sum != last {
			r.logf("draining: %s", sum)
			last = sum
		}
		done := len(r.pendingReuse) == 0
		for _, v := range r.sc.Versions {
			if len(r.sc.atCentral(c, v)) != 1 || c.camera[v.Serial][v.Name] == v.SHA {
				done = false
			}
		}
		if done {
			// The dock's side is read with the agent stopped: a clean stop, not a kill.
			if r.dock.stop() {
				r.logf("agent stopped (end of script, SIGTERM) to read the dock")
			} else {
				r.logf("agent did not stop within 10 s of SIGTERM: killed to read the dock")
			}
			c := r.sc.takeCensus(r.storeDir, r.dockDir, r.keyFile, true)
			drained := true
			for _, d := range c.dock {
				drained = drained && d.State != queue.Spooled && d.State != queue.Uploading
			}
			if drained || time.Now().After(deadline) {
				if r.check("at the end", true, true) > 0 {
					r.t.Logf("%s", r.story())
				}
				return
			}
			r.logf("queue not drained yet: %s", r.sc.summary(c))
			r.startDock()
			time.Sleep(3 * time.Second)
			continue
		}
		if time.Now().After(deadline) {
			r.dock.kill()
			r.logf("drain bound of %v passed: agent killed to read the dock", custodyDrain)
			if r.check(fmt.Sprintf("%v after the last disturbance (STUCK)", custodyDrain), true, true) == 0 {
				r.fatal("stuck, but the final check found nothing: %s", r.sc.summary(c))
			}
			r.t.Logf("%s", r.story())
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// mountLazyBin is mountLazy with lazyfsd already built.
func mountLazyBin(t *testing.T, bin string) *lazyDisk {
	t.Helper()
	dir := t.TempDir()
	d := &lazyDisk{Backing: filepath.Join(dir, "disk"), Mount: filepath.Join(dir, "mnt"), t: t, bin: bin}
	for _, p := range []string{d.Backing, d.Mount} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.start()
	t.Cleanup(func() { d.kill() })
	return d
}
