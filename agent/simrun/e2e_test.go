package simrun

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"dock/agent"
	"dock/agent/ctlview"
	"dock/board/sim"
	"dock/health"
	"dock/queue"
	"dock/uplink/broker"
	"dock/uplink/central"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// startHarness starts the agent on a simulated dock for one test, with a deadline; both
// end with the test.
func startHarness(t *testing.T, timeout time.Duration, o Options) (context.Context, *Harness) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	h, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return ctx, h
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return nil
}

func TestDockOffloadUploadVerifyEmbeddedBroker(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 2, Log: testLog(t)})
	cam, want, err := h.NewCamera("CAM-0001", "OF-1", 3, 700_000, 1, map[int]string{1: "dispute"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad, want2, err := h.NewCamera("CAM-0002", "OF-2", 2, 300_000, 2, nil, func(s *sim.CameraState) { s.FullMAh = 1500 })
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want2 {
		want[k] = v
	}
	if err := h.Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(1, bad); err != nil {
		t.Fatal(err)
	}
	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		t.Fatal(err)
	}
	// Cameras are emptied, the worn battery takes CAM-0002 out of service, after offload.
	err = WaitFor(ctx, "cameras empty and CAM-0002 locked", func() bool {
		return len(cam.State().Files) == 0 && len(bad.State().Files) == 0 && bad.State().LockReason != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.Dock.Slots[1].Fault.Level() != true {
		t.Error("fault LED of slot 1 not lit")
	}
	if cam.State().LockReason != "" {
		t.Error("healthy camera locked")
	}
	// Non-held recordings are freed on the dock after verification; the held one stays.
	err = WaitFor(ctx, "dock copies freed", func() bool {
		st, _ := h.Store.Stats()
		return st.Count[queue.Freed] == len(want)-1 && st.Count[queue.Verified] == 1
	})
	if err != nil {
		st, _ := h.Store.Stats()
		t.Fatalf("%v: %+v", err, st)
	}
	if n, err := h.Store.VerifyLedger(); err != nil || n == 0 {
		t.Fatalf("ledger: %d entries, %v", n, err)
	}
	// The metrics endpoint tells the same story.
	resp, err := http.Get("http://" + h.Agent.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf("dock_offload_recordings_total %d", len(want)),
		`dock_slot_state{slot="1",state="out-of-service"} 1`,
		`dock_faults{code="battery-worn",state=`,
		`dock_queue_recordings{state="freed"} 4`,
		`dock_queue_pending_by_class{class="patrol"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// dockctl, the maintenance tool, against the running agent's control socket.
func TestDockctl(t *testing.T) {
	dir := t.TempDir()
	bin := dir + "/dockctl"
	host, _ := exec.Command("go", "env", "GOHOSTARCH").Output()
	build := exec.Command("go", "build", "-o", bin, "dock/agent/cmd/dockctl")
	build.Env = append(os.Environ(), "GOARCH="+strings.TrimSpace(string(host)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build dockctl: %v\n%s", err, out)
	}
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: dir, Slots: 1, Log: testLog(t)})
	cam, _, err := h.NewCamera("CAM-CTL", "OF-9", 2, 100_000, 9, nil, func(s *sim.CameraState) { s.FullMAh = 1000 })
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "battery fault", func() bool { return len(h.Agent.Faults()) > 0 }); err != nil {
		t.Fatal(err)
	}
	sock := dir + "/dock/ctl.sock"
	ctl := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"-socket", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dockctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := ctl("slots"); !strings.Contains(out, "CAM-CTL") || !strings.Contains(out, "battery-worn") {
		t.Errorf("slots:\n%s", out)
	}
	if out := ctl("faults"); !strings.Contains(out, "CAM-CTL/battery-worn") {
		t.Errorf("faults:\n%s", out)
	}
	ctl("ack", "CAM-CTL/battery-worn", "tech-7")
	if f := faultOf(h, "battery-worn"); f.State != health.Acknowledged {
		t.Errorf("after ack the fault is %s", f.State)
	}
	if out := ctl("ledger-verify"); !strings.Contains(out, "ledger OK") {
		t.Errorf("ledger-verify:\n%s", out)
	}
	var q ctlview.QueueView
	if err := json.Unmarshal([]byte(ctl("-json", "queue")), &q); err != nil {
		t.Fatalf("queue -json: %v", err)
	}
	if out, err := exec.Command(bin, "-socket", sock, "ack", "no-such-fault").CombinedOutput(); err == nil {
		t.Errorf("acknowledging an unknown fault succeeded: %s", out)
	}
}

// Configs: signed and valid is applied and reported; unsigned, signed by another key, or
// invalid is refused with the reason published, and the config in force stays.
func TestConfigIntake(t *testing.T) {
	ctx, h := startHarness(t, 30*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t)})
	_, stranger, _ := ed25519.GenerateKey(nil)
	good := wire.ConfigMsg{Version: 5, Team: "Team-East", Officers: map[string]string{"CAM-1": "OF-1"}, Thresholds: json.RawMessage(`{"min_battery_health_pct": 75}`)}
	forged := good
	forged.Version, forged.Team = 6, "Mallory"
	forged.Sign(stranger)
	unsigned := good
	unsigned.Version, unsigned.Team = 7, "Mallory"
	invalid := good
	invalid.Version, invalid.Thresholds = 8, json.RawMessage(`{"max_charge_temp_c": 200}`)
	stale := good
	stale.Version = 4

	steps := []struct {
		name    string
		push    func(wire.ConfigMsg) error
		msg     wire.ConfigMsg
		status  string
		reason  string
		version int64 // in force afterwards
	}{
		{"signed and valid", func(m wire.ConfigMsg) error { return h.Central.PushConfig(ctx, "dock-sim-1", m) }, good, "applied", "", 5},
		{"signed by another key", func(m wire.ConfigMsg) error { return h.Central.PublishConfig(ctx, "dock-sim-1", m) }, forged, "rejected", "signature", 5},
		{"unsigned", func(m wire.ConfigMsg) error { return h.Central.PublishConfig(ctx, "dock-sim-1", m) }, unsigned, "rejected", "unsigned", 5},
		{"out of range", func(m wire.ConfigMsg) error { return h.Central.PushConfig(ctx, "dock-sim-1", m) }, invalid, "rejected", "max_charge_temp_c", 5},
		{"older version", func(m wire.ConfigMsg) error { return h.Central.PushConfig(ctx, "dock-sim-1", m) }, stale, "rejected", "not newer", 5},
	}
	for _, st := range steps {
		if err := st.push(st.msg); err != nil {
			t.Fatal(err)
		}
		var rep wire.ReportedMsg
		if err := WaitFor(ctx, st.name+" report", func() bool {
			var ok bool
			rep, ok = h.Central.Reported("dock-sim-1")
			return ok && rep.Version == st.msg.Version
		}); err != nil {
			t.Fatal(err)
		}
		if rep.Status != st.status || !strings.Contains(rep.Reason, st.reason) || rep.Active != st.version {
			t.Errorf("%s: reported %+v", st.name, rep)
		}
		s := h.Agent.Settings()
		if s.Version != st.version || s.Team != "Team-East" || s.Thresholds.MinBatteryHealthPct != 75 {
			t.Errorf("%s: settings in force %+v", st.name, s)
		}
	}
	if !ledgerHas(h, queue.EvConfig, "rejected version 6") {
		t.Error("the forged config left no ledger entry")
	}
	// The config in force survives a restart of the agent: it was persisted.
	var saved agent.Settings
	if ok, err := h.Store.GetDoc("config", "central", &saved); !ok || err != nil || saved.Version != 5 {
		t.Errorf("persisted config %+v %v %v", saved, ok, err)
	}
}

// Central's fleet settings at the dock: a blocked camera is offloaded first, then locked
// with its LED lit; a camera due out charges past the long-life ceiling while another
// stops at it; each docking's health sample reaches central.
func TestBlockListDueOutAndHealthHistory(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 3, Log: testLog(t), Config: func(c *agent.Config) { c.ChargeCeiling = 80 }})
	cfg := wire.ConfigMsg{Version: 2, Team: "T", Blocked: []string{"CAM-BLK"}, DueOut: []string{"CAM-OUT"}}
	if err := h.Central.PushConfig(ctx, "dock-sim-1", cfg); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "config applied", func() bool { return h.Agent.Settings().Version == 2 }); err != nil {
		t.Fatal(err)
	}
	blk, want, _ := h.NewCamera("CAM-BLK", "OF-1", 2, 100_000, 21, nil, nil)
	out, _, _ := h.NewCamera("CAM-OUT", "OF-2", 1, 100_000, 22, nil, func(s *sim.CameraState) { s.ChargePct = 75 })
	stay, _, _ := h.NewCamera("CAM-STAY", "OF-3", 1, 100_000, 23, nil, func(s *sim.CameraState) { s.ChargePct = 75 })
	for i, c := range []*sim.Camera{blk, out, stay} {
		if err := h.Dock.Dock(i, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := WaitCentral(ctx, h.Central.Store(), want); err != nil {
		t.Fatal(err) // evidence first: the blocked camera's footage still arrives
	}
	if err := WaitFor(ctx, "blocked camera locked", func() bool {
		return blk.State().LockReason != "" && h.Dock.Slots[0].Fault.Level() == true && len(blk.State().Files) == 0
	}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "due-out camera charged full", func() bool { return out.State().ChargePct >= 100 }); err != nil {
		t.Fatal(err)
	}
	if c := stay.State().ChargePct; c > 82 {
		t.Errorf("CAM-STAY charged to %.0f%%, past the 80%% ceiling", c)
	}
	if h.Dock.Slots[2].Charge.Level() == true {
		t.Error("CAM-STAY's charger still on at the ceiling")
	}
	if err := WaitFor(ctx, "health samples at central", func() bool { return len(h.Central.Health("CAM-OUT")) > 0 }); err != nil {
		t.Fatal(err)
	}
	if hs := h.Central.Health("CAM-OUT")[0]; hs.HealthPct != 96 {
		t.Errorf("health sample %+v", hs)
	}
}

// Article 22 spot check: central asks for N random recordings of a device and day, and
// they upload before everything else waiting on the dock.
func TestSampleRequestGoesFirst(t *testing.T) {
	dir := t.TempDir()
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: dir, Slots: 1, NoCentral: true, Log: testLog(t)})
	cam, want, err := h.NewCamera("CAM-S", "OF-S", 8, 300_000, 31, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(0, cam)
	if err := WaitFor(ctx, "all spooled", func() bool { st, _ := h.Store.Stats(); return st.Count[queue.Spooled] == len(want) }); err != nil {
		t.Fatal(err)
	}
	var day string
	onDay := 0
	_ = h.Store.Each(func(r queue.Recording) error {
		if day == "" {
			day = r.Start.UTC().Format("2006-01-02")
		}
		if r.Start.UTC().Format("2006-01-02") == day {
			onDay++
		}
		return nil
	})
	n := min(3, onDay)
	office, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: h.BrokerURL, ClientID: "office", CleanSession: true}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer office.Close()
	sample := wire.CommandMsg{Kind: "sample", Device: "CAM-S", Day: day, Count: n, By: "inspector-2"}
	wire.SealFor(&sample, "dock-sim-1", uint64(time.Now().UnixNano()), h.CentralKey) // the office signs as central
	cmd, _ := json.Marshal(sample)
	if err := office.Publish(ctx, wire.CentralTopic("dock-sim-1", wire.TopicCommand), 1, false, cmd); err != nil {
		t.Fatal(err)
	}
	var chosen []string
	if err := WaitFor(ctx, "spot check in the ledger", func() bool {
		chosen = nil
		_ = h.Store.Ledger(1, func(e queue.Entry) error {
			if e.Kind == queue.EvAccess && strings.Contains(e.Detail, "spot check") {
				for id := range want {
					if strings.Contains(e.Detail, id) {
						chosen = append(chosen, id)
					}
				}
			}
			return nil
		})
		return len(chosen) == n
	}); err != nil {
		t.Fatal(err)
	}
	rcv, err := central.Start(ctx, central.Options{Broker: h.BrokerURL, ClientID: "central-late", Store: central.FileStore{Dir: filepath.Join(dir, "central")}, SigningKey: h.CentralKey}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	if err := WaitCentral(ctx, rcv.Store(), want); err != nil {
		t.Fatal(err)
	}
	stored, _ := rcv.Store().List()
	sort.Slice(stored, func(i, j int) bool { return stored[i].Stored.Before(stored[j].Stored) })
	for _, s := range stored[:n] {
		if !slices.Contains(chosen, s.Meta.ID) {
			t.Errorf("%s arrived among the first %d, but the sample was %v", s.Meta.ID, n, chosen)
		}
	}
}

// A config after which the dock cannot reach the broker is undone by the dock itself,
// and central hears of it once the broker is back.
func TestConfigRollsBackWhenCutOff(t *testing.T) {
	ctx, h := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: testLog(t), Config: func(c *agent.Config) {
		c.RollbackAfter = wire.Duration(2 * time.Second)
	}})
	if err := h.Central.PushConfig(ctx, "dock-sim-1", wire.ConfigMsg{Version: 9, Team: "Team-After"}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "config applied", func() bool { return h.Agent.Settings().Version == 9 }); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(h.BrokerURL, "tcp://")
	h.Broker.Close()
	if err := WaitFor(ctx, "rolled back", func() bool { return h.Agent.Settings().Version == 0 }); err != nil {
		t.Fatal(err)
	}
	if h.Agent.Settings().Team == "Team-After" {
		t.Error("team of the rolled-back config still in force")
	}
	if !ledgerHas(h, queue.EvConfig, "rolled back version 9") {
		t.Error("no ledger entry for the rollback")
	}
	var err error
	if h.Broker, err = broker.Start(addr, quietLog()); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "rollback reported", func() bool {
		r, ok := h.Central.Reported("dock-sim-1")
		return ok && r.Version == 9 && r.Status == "rolled-back" && r.Active == 0
	}); err != nil {
		r, _ := h.Central.Reported("dock-sim-1")
		t.Fatalf("%v (last report %+v)", err, r)
	}
	// The undone version never comes back by itself, even when pushed again.
	if err := h.Central.PushConfig(ctx, "dock-sim-1", wire.ConfigMsg{Version: 9, Team: "Team-After"}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "re-push refused", func() bool {
		r, ok := h.Central.Reported("dock-sim-1")
		return ok && r.Version == 9 && r.Status == "rejected" && strings.Contains(r.Reason, "rolled back")
	}); err != nil {
		t.Fatal(err)
	}
	if h.Agent.Settings().Version != 0 {
		t.Error("the rolled-back config applied again")
	}
}
