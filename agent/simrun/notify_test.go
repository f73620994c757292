package simrun

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"dock/board/sim"
	"dock/uplink/central"
	"dock/uplink/central/notify"
	"dock/uplink/central/notify/notifytest"
	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// A worn battery docked in the real agent on the simulated dock reaches maintenance over
// a real broker: central's notifier posts the signed webhook and sends the e-mail through a
// real SMTP server, once, although the dock alerts the fault again and again.
func TestFaultReachesMaintenanceByWebhookAndEmail(t *testing.T) {
	mq := mqtttest.Start(t, "")
	mp := notifytest.StartMailpit(t)
	const secret = "maintenance-north"
	var mu sync.Mutex
	var posts []notify.Message
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(r.Header.Get("X-Dock-Timestamp") + "." + string(body)))
		if r.Header.Get("X-Dock-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("webhook signature %q does not match", r.Header.Get("X-Dock-Signature"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var msg notify.Message
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		posts = append(posts, msg)
		mu.Unlock()
	}))
	defer hook.Close()

	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := notify.Config{
		Gather: notify.Duration(time.Second),
		SMTP:   &notify.SMTP{Addr: mp.SMTPAddr, CAFile: mp.CAFile, Username: mp.User, Password: mp.Password},
		Teams: []notify.Team{{Name: "north", Docks: []string{"dock-sim-1"},
			Webhook: &notify.Webhook{URL: hook.URL + "/hooks/north", Secret: []byte(secret)},
			Email:   &notify.Email{From: "central@dock.test", To: []string{"north@dock.test"}}}},
	}
	st, err := notify.OpenFileStore(filepath.Join(dir, "notify.json"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(notify.Options{Config: cfg, Store: st, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nctx, stopNotify := context.WithCancel(ctx)
	notified := make(chan struct{})
	go func() { n.Run(nctx); close(notified) }()
	defer func() { stopNotify(); <-notified }()
	alerts := &countAlerts{Observer: n.Observer(nil), n: map[string]int{}}
	rcv, err := central.Start(ctx, central.Options{Broker: mq.URL, ClientID: "central-notify", Store: central.FileStore{Dir: filepath.Join(dir, "central")}, SigningKey: key,
		Observer: alerts}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	_, h := startHarness(t, 60*time.Second, Options{Dir: dir, Slots: 2, Broker: mq.URL, NoCentral: true, CentralKey: key, Log: testLog(t)})
	// Alerts repeated every second until acknowledged, so the test sees repeats.
	if err := rcv.PushConfig(ctx, "dock-sim-1", wire.ConfigMsg{Version: 1, Team: "north", AlertEvery: wire.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "the config applied", func() bool { r, ok := rcv.Reported("dock-sim-1"); return ok && r.Version == 1 && r.Status == "applied" }); err != nil {
		r, _ := rcv.Reported("dock-sim-1")
		t.Fatalf("%v: %+v", err, r)
	}
	cam, _, err := h.NewCamera("CAM-WORN", "OF-1", 1, 100_000, 5, nil, func(s *sim.CameraState) { s.FullMAh = 1200 })
	if err != nil {
		t.Fatal(err)
	}
	docked := time.Now()
	if err := h.Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	ms := mp.WaitMessages(t, 1, 30*time.Second)
	if err := WaitFor(ctx, "the webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(posts) > 0 }); err != nil {
		t.Fatal(err)
	}
	t.Logf("docked to webhook and e-mail: %v", time.Since(docked).Round(10*time.Millisecond))
	if len(ms) != 1 || ms[0].Subject != "dock dock-sim-1: fault battery-worn on CAM-WORN" || !strings.Contains(ms[0].Text, "CAM-WORN in bay 0") {
		t.Fatalf("mail: %+v", ms)
	}
	mu.Lock()
	p := posts[0]
	mu.Unlock()
	if p.Dock != "dock-sim-1" || p.Team != "north" || len(p.Faults) != 1 || p.Faults[0].ID != "CAM-WORN/battery-worn" || p.Faults[0].Device != "CAM-WORN" {
		t.Fatalf("webhook message %+v", p)
	}
	// The dock alerts again until maintenance acknowledges: a repeat sends nothing.
	if err := WaitFor(ctx, "the dock's repeats of the alert", func() bool {
		return alerts.count("CAM-WORN/battery-worn") >= 3
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // a gathering window: a repeat's message would be on its way
	mu.Lock()
	defer mu.Unlock()
	if got := mp.Messages(t); len(posts) != 1 || len(got) != 1 {
		t.Fatalf("%d webhook posts and %d mails for one fault", len(posts), len(got))
	}
}

// countAlerts counts each fault's alerts on their way to the notifier's Observer.
type countAlerts struct {
	central.Observer
	mu sync.Mutex
	n  map[string]int
}

func (c *countAlerts) DockAlert(dock string, a wire.AlertMsg) error {
	c.mu.Lock()
	c.n[a.ID]++
	c.mu.Unlock()
	return c.Observer.DockAlert(dock, a)
}

func (c *countAlerts) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}
