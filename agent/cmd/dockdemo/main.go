// Command dockdemo runs the whole system on one machine with no hardware: an embedded MQTT
// broker, the central receiver, a simulated four-bay dock and the real agent. It docks four
// cameras, offloads and uploads their footage, takes one camera with a worn battery out of
// service, pushes a good and a bad config, and exits 0 only if every recording reached
// central with a matching hash.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"dock/agent"
	"dock/agent/simrun"
	"dock/board/sim"
	"dock/health"
	"dock/queue"
	"dock/uplink/wire"
)

const marker = ".dock-demo"

func main() {
	dir := flag.String("dir", "build/out/demo", "state directory (spool, ledger, central's store); wiped at start if it holds an earlier demo")
	size := flag.Int64("size", 3<<20, "bytes per generated recording")
	perCamera := flag.Int("recordings", 5, "recordings per camera")
	verbose := flag.Bool("v", false, "log every event")
	flag.Parse()
	start := time.Now()
	ok, err := run(*dir, *size, *perCamera, *verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
	fmt.Printf("\ndemo finished in %.1fs\n", time.Since(start).Seconds())
	if !ok {
		os.Exit(1)
	}
}

func prepare(dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("%s is not empty and holds no earlier demo: choose another -dir", dir)
		}
		// Spool files are read-only; make them removable.
		_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil {
				_ = os.Chmod(p, info.Mode()|0o700)
			}
			return nil
		})
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, marker), nil, 0o644)
}

type camSpec struct {
	serial, officer string
	marks           map[int]string
	mod             func(*sim.CameraState)
	note            string
}

func run(dir string, size int64, perCamera int, verbose bool) (bool, error) {
	if err := prepare(dir); err != nil {
		return false, err
	}
	logOut := io.Writer(io.Discard)
	if verbose {
		logOut = os.Stderr
	} else {
		f, err := os.Create(filepath.Join(dir, "demo.log"))
		if err != nil {
			return false, err
		}
		defer f.Close()
		logOut = f
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()

	say("starting embedded MQTT broker, central receiver, simulated 4-bay dock and the dock agent")
	h, err := simrun.Start(ctx, simrun.Options{Dir: dir, Slots: 4, Dock: "dock-demo-1", Log: log,
		Config: func(c *agent.Config) { c.Team = "unassigned" }})
	if err != nil {
		return false, err
	}
	defer h.Close()
	say("broker %s; state in %s", h.BrokerURL, dir)

	th, _ := json.Marshal(health.DefaultThresholds())
	good := wire.ConfigMsg{Version: 1, Team: "Team-North-3", Officers: map[string]string{"CAM-0001": "OF-1701", "CAM-0002": "OF-1702", "CAM-0003": "OF-1703", "CAM-0004": "OF-1704"},
		Thresholds: th, AlertEvery: wire.Duration(20 * time.Second), TelemetryEvery: wire.Duration(2 * time.Second)}
	if err := h.Central.PushConfig(ctx, "dock-demo-1", good); err != nil {
		return false, err
	}
	if err := simrun.WaitFor(ctx, "config v1 applied", func() bool { return h.Agent.Settings().Version == 1 }); err != nil {
		return false, err
	}
	say("central pushed config v1 (team %s, officer per device, health thresholds): applied", good.Team)

	specs := []camSpec{
		{serial: "CAM-0001", officer: "OF-0001", marks: map[int]string{2: queue.HoldDispute}, note: "one recording marked 'dispute' (held)"},
		{serial: "CAM-0002", officer: "OF-0002"},
		{serial: "CAM-0003", officer: "OF-0003", mod: func(s *sim.CameraState) { s.FullMAh = 1850 }, note: "battery worn to 62% of design"},
		{serial: "CAM-0004", officer: "OF-0004", mod: func(s *sim.CameraState) { s.ChargePct = 80 }},
	}
	want := simrun.Footage{}
	perCam := map[string]simrun.Footage{}
	cams := map[string]*sim.Camera{}
	for i, sp := range specs {
		cam, fp, err := h.NewCamera(sp.serial, sp.officer, perCamera, size, uint64(i+1), sp.marks, sp.mod)
		if err != nil {
			return false, err
		}
		cams[sp.serial], perCam[sp.serial] = cam, fp
		for k, v := range fp {
			want[k] = v
		}
	}
	for i, sp := range specs {
		if err := h.Dock.Dock(i, cams[sp.serial]); err != nil {
			return false, err
		}
		extra := ""
		if sp.note != "" {
			extra = " — " + sp.note
		}
		say("docked %s in bay %d: %d recordings, %.1f MB%s", sp.serial, i, perCamera, float64(int64(perCamera)*size)/1e6, extra)
		time.Sleep(200 * time.Millisecond)
	}

	if err := simrun.WaitCentral(ctx, h.Central.Store(), want); err != nil {
		return false, err
	}
	say("central holds all %d recordings", len(want))
	if err := simrun.WaitFor(ctx, "cameras emptied and CAM-0003 out of service", func() bool {
		for _, c := range cams {
			if len(c.State().Files) > 0 {
				return false
			}
		}
		_, alerted := h.Central.Alerts()["dock-demo-1/CAM-0003/battery-worn"]
		return cams["CAM-0003"].State().LockReason != "" && alerted
	}); err != nil {
		return false, err
	}
	say("CAM-0003 locked, fault LED on bay 2, alert received by central")

	bad := good
	bad.Version = 2
	bad.Thresholds = json.RawMessage(`{"min_battery_health_pct": 0}`)
	if err := h.Central.PushConfig(ctx, "dock-demo-1", bad); err != nil {
		return false, err
	}
	var rep wire.ReportedMsg
	if err := simrun.WaitFor(ctx, "config v2 report", func() bool {
		var ok bool
		rep, ok = h.Central.Reported("dock-demo-1")
		return ok && rep.Version == 2
	}); err != nil {
		return false, err
	}
	say("central pushed config v2 with min_battery_health_pct 0: %s (%s); version %d stays active", rep.Status, rep.Reason, rep.Active)

	forged := good
	forged.Version, forged.Team, forged.Sig = 3, "Impostor", ""
	if err := h.Central.PublishConfig(ctx, "dock-demo-1", forged); err != nil {
		return false, err
	}
	if err := simrun.WaitFor(ctx, "config v3 report", func() bool {
		var ok bool
		rep, ok = h.Central.Reported("dock-demo-1")
		return ok && rep.Version == 3
	}); err != nil {
		return false, err
	}
	say("someone on the broker published an unsigned config v3: %s (%s)", rep.Status, rep.Reason)

	if err := simrun.WaitFor(ctx, "dock copies freed", func() bool {
		st, _ := h.Store.Stats()
		return st.Count[queue.Spooled]+st.Count[queue.Uploading] == 0
	}); err != nil {
		return false, err
	}
	// Let the cameras charge a moment and the ledger reach central.
	if err := simrun.WaitFor(ctx, "ledger exported to central", func() bool {
		return uint64(len(h.Central.Ledger("dock-demo-1"))) >= h.Store.LedgerHead()
	}); err != nil {
		return false, err
	}
	for _, s := range h.Agent.Telemetry().Slots {
		if s.Battery != nil {
			say("bay %d %s: battery %d%%, health %d%%, %.1f C, charging=%v", s.Slot, s.Device, s.Battery.ChargePct, s.Battery.HealthPct, s.Battery.TempC, s.Charging)
		}
	}
	return summary(h, want, perCam, rep, dir)
}

func say(f string, a ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(f, a...))
}

func summary(h *simrun.Harness, want simrun.Footage, perCam map[string]simrun.Footage, rep wire.ReportedMsg, dir string) (bool, error) {
	missing, corrupt, err := simrun.CheckCentral(h.Central.Store(), want)
	if err != nil {
		return false, err
	}
	st, err := h.Store.Stats()
	if err != nil {
		return false, err
	}
	n, lerr := h.Store.VerifyLedger()

	fmt.Println("\n== recordings ==")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "camera\trecordings\toffloaded\tat central\tsha256 match\theld on dock")
	serials := make([]string, 0, len(perCam))
	for s := range perCam {
		serials = append(serials, s)
	}
	sort.Strings(serials)
	for _, serial := range serials {
		fp := perCam[serial]
		off, atCentral, match, held := 0, 0, 0, 0
		for id, sum := range fp {
			r, err := h.Store.Get(id)
			if err == nil {
				off++
				if r.State == queue.Verified && r.Hold != "" {
					held++
				}
			}
			if s, ok, _ := h.Central.Store().Lookup(id); ok {
				atCentral++
				if s.SHA256 == sum {
					match++
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", serial, len(fp), off, atCentral, match, held)
	}
	tw.Flush()

	fmt.Println("\n== faults ==")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tstate\talerts\tdetail")
	for _, f := range h.Agent.Faults() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", f.ID, f.State, f.Alerts, f.Detail)
	}
	tw.Flush()

	fmt.Println("\n== dock ==")
	for _, s := range h.Agent.Telemetry().Slots {
		fmt.Printf("bay %d: %-15s %s charging=%v faults=%s\n", s.Slot, s.State, s.Device, s.Charging, strings.Join(s.Faults, ","))
	}
	fmt.Printf("queue: %d freed after verified receipt, %d verified and held (article 13), %d waiting\n",
		st.Count[queue.Freed], st.Count[queue.Verified], st.Count[queue.Spooled]+st.Count[queue.Uploading])
	fmt.Printf("config: v%d active; v%d %s: %s\n", h.Agent.Settings().Version, rep.Version, rep.Status, rep.Reason)
	if lerr != nil {
		fmt.Printf("ledger: BROKEN: %v\n", lerr)
	} else {
		fmt.Printf("ledger: %d entries, hash chain verified; %d exported to central\n", n, len(h.Central.Ledger("dock-demo-1")))
	}
	fmt.Printf("check it yourself: (cd %s && for d in */*/; do (cd $d && sha256sum --quiet -c *.sha256) && echo \"$d verified\"; done)\n", filepath.Join(dir, "central", "recordings"))

	ok := len(missing) == 0 && len(corrupt) == 0 && lerr == nil
	fmt.Println()
	if ok {
		fmt.Printf("RESULT: OK — %d of %d recordings at central with matching SHA-256\n", len(want)-len(missing)-len(corrupt), len(want))
	} else {
		fmt.Printf("RESULT: FAILED — missing %v, corrupt %v, ledger %v\n", missing, corrupt, lerr)
		return false, errors.New("not every recording verified")
	}
	return ok, nil
}
