package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"dock/uplink/central/notify"
	"dock/uplink/wire"
)

// hook is a webhook receiver that records every request and answers with the statuses
// given for each delivery's attempts in turn (200 past the list).
type hook struct {
	mu       sync.Mutex
	reqs     []hookReq
	statuses func(delivery string, attempt int) int
	srv      *httptest.Server
}

type hookReq struct {
	at     time.Time
	path   string
	header http.Header
	body   []byte
	msg    notify.Message
	status int
}

func newHook(t *testing.T, statuses func(delivery string, attempt int) int) *hook {
	h := &hook{statuses: statuses}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m notify.Message
		_ = json.Unmarshal(body, &m)
		h.mu.Lock()
		n := 0
		for _, q := range h.reqs {
			if q.header.Get(notify.HeaderDelivery) == r.Header.Get(notify.HeaderDelivery) {
				n++
			}
		}
		status := 200
		if h.statuses != nil {
			status = h.statuses(r.Header.Get(notify.HeaderDelivery), n+1)
		}
		h.reqs = append(h.reqs, hookReq{at: time.Now(), path: r.URL.Path, header: r.Header.Clone(), body: body, msg: m, status: status})
		h.mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprintf(w, "status %d", status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) requests() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookReq(nil), h.reqs...)
}

// taken is the requests answered 2xx.
func (h *hook) taken() []hookReq {
	var out []hookReq
	for _, q := range h.requests() {
		if q.status/100 == 2 {
			out = append(out, q)
		}
	}
	return out
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// secretFile writes a secret its owner alone may read.
func secretFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fastConfig is a config whose windows and backoff suit a test.
func fastConfig(teams ...notify.Team) notify.Config {
	return notify.Config{
		Gather: notify.Duration(300 * time.Millisecond),
		Retry:  notify.Retry{First: notify.Duration(50 * time.Millisecond), Max: notify.Duration(200 * time.Millisecond), GiveUp: notify.Duration(time.Minute)},
		Teams:  teams,
	}
}

// start runs a notifier until the test ends (or stop is called) and returns it.
func start(t *testing.T, o notify.Options) (*notify.Notifier, func()) {
	t.Helper()
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	n, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return n, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func alert(device, code string, raised time.Time) wire.AlertMsg {
	return wire.AlertMsg{ID: device + "/" + code, Device: device, Slot: 1, Code: code, Detail: "detail of " + code, State: "alerted", RaisedAt: raised, Attempt: 1}
}

// checkSignature recomputes the HMAC the receiver would, by hand.
func checkSignature(t *testing.T, secret string, q hookReq) {
	t.Helper()
	ts := q.header.Get("X-Dock-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Errorf("timestamp %q: not the time of sending", ts)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(q.body)))
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); q.header.Get("X-Dock-Signature") != want {
		t.Errorf("signature %q, want %q", q.header.Get("X-Dock-Signature"), want)
	}
	if q.header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", q.header.Get("Content-Type"))
	}
	if q.header.Get("X-Dock-Delivery") != q.msg.Delivery || q.msg.Delivery == "" {
		t.Errorf("delivery header %q, body's %q", q.header.Get("X-Dock-Delivery"), q.msg.Delivery)
	}
}

// Ten faults of one dock, each alerted twice, make one signed message, retried through
// two 500s with a growing wait; another dock's fault makes its own.
func TestWebhookDigestRetriedAndSigned(t *testing.T) {
	const secret = "north-hmac-secret"
	h := newHook(t, func(_ string, attempt int) int {
		if attempt <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	cfg := fastConfig(notify.Team{Name: "north", Docks: []string{"dock-1", "dock-2"},
		Webhook: &notify.Webhook{URL: h.srv.URL + "/north", Secret: []byte(secret)}})
	cfg.ConsoleURL = "https://central.example:8443/console"
	store := notify.NewMemStore()
	n, _ := start(t, notify.Options{Config: cfg, Store: store})
	raised := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	first := time.Now()
	for rep := 0; rep < 2; rep++ { // the dock sends each alert again until acknowledged
		for i := 0; i < 10; i++ {
			if err := n.Observe("dock-1", alert(fmt.Sprintf("CAM-%d", i), "battery-worn", raised)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := n.Observe("dock-2", alert("CAM-20", "storage-worn", raised)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "two deliveries taken", func() bool { return len(h.taken()) >= 2 })
	waitFor(t, 5*time.Second, "no delivery left open", func() bool { o, _ := store.Open(); return len(o) == 0 })

	byDelivery := map[string][]hookReq{}
	for _, q := range h.requests() {
		checkSignature(t, secret, q)
		if q.path != "/north" {
			t.Errorf("posted to %s", q.path)
		}
		byDelivery[q.msg.Delivery] = append(byDelivery[q.msg.Delivery], q)
	}
	if len(byDelivery) != 2 {
		t.Fatalf("%d deliveries, want one per dock: %v", len(byDelivery), byDelivery)
	}
	for id, qs := range byDelivery {
		if len(qs) != 3 || qs[0].status != 500 || qs[1].status != 500 || qs[2].status != 200 {
			t.Errorf("delivery %s: %d attempts, want 500, 500, 200", id, len(qs))
			continue
		}
		m := qs[2].msg
		if gap1, gap2 := qs[1].at.Sub(qs[0].at), qs[2].at.Sub(qs[1].at); gap1 < 50*time.Millisecond || gap2 < 100*time.Millisecond {
			t.Errorf("delivery %s: retried after %v then %v, want at least 50 ms then 100 ms (doubling)", id, gap1, gap2)
		}
		if since := qs[0].at.Sub(first); since < 300*time.Millisecond {
			t.Errorf("delivery %s: first attempt %v after the first fault, before the gathering window ended", id, since)
		}
		want := map[string]int{"dock-1": 10, "dock-2": 1}[m.Dock]
		if len(m.Faults) != want || m.Team != "north" {
			t.Errorf("delivery %s: dock %s team %s with %d faults, want %d", id, m.Dock, m.Team, len(m.Faults), want)
		}
		seen := map[string]bool{}
		for _, f := range m.Faults {
			if seen[f.ID] || f.Dock != m.Dock || !f.RaisedAt.Equal(raised) || f.Detail != "detail of "+f.Code {
				t.Errorf("delivery %s: fault %+v repeated or altered", id, f)
			}
			seen[f.ID] = true
		}
		if m.Console != "https://central.example:8443/console/faults?dock="+m.Dock {
			t.Errorf("console link %q", m.Console)
		}
	}
}

// A refusal that cannot change is given up after one attempt; a busy or failing receiver
// is tried again.
func TestWebhookRefusals(t *testing.T) {
	for _, tc := range []struct {
		status      int
		wantGivenUp bool
	}{
		{http.StatusUnauthorized, true},
		{http.StatusNotFound, true},
		{http.StatusTooManyRequests, false},
		{http.StatusServiceUnavailable, false},
		{http.StatusFound, false}, // a redirect is not followed, and not taken
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			h := newHook(t, func(string, int) int { return tc.status })
			store := notify.NewMemStore()
			n, stop := start(t, notify.Options{Store: store, Config: fastConfig(notify.Team{Name: "t", Docks: []string{"*"},
				Webhook: &notify.Webhook{URL: h.srv.URL, Secret: []byte("s")}})})
			if err := n.Observe("dock-1", alert("CAM-1", "battery-worn", time.Now())); err != nil {
				t.Fatal(err)
			}
			if tc.wantGivenUp {
				waitFor(t, 5*time.Second, "the delivery given up", func() bool {
					o, _ := store.Open()
					return len(h.requests()) == 1 && len(o) == 0
				})
			} else {
				waitFor(t, 5*time.Second, "three attempts", func() bool { return len(h.requests()) >= 3 })
			}
			stop()
			if o, _ := store.Open(); tc.wantGivenUp == (len(o) == 1) {
				t.Fatalf("after %d attempts answered %d: %d deliveries open", len(h.requests()), tc.status, len(o))
			}
		})
	}
}

// The notifications survive a restart: a delivery failing when central stops goes out
// after it under the same id, a fault heard of but not yet gathered goes out too, and the
// dock's repeats of faults already delivered send nothing.
func TestDeliveryStateSurvivesARestart(t *testing.T) {
	var up sync.Mutex
	failing := true
	h := newHook(t, func(string, int) int {
		up.Lock()
		defer up.Unlock()
		if failing {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	path := filepath.Join(t.TempDir(), "notify.json")
	cfg := fastConfig(notify.Team{Name: "north", Docks: []string{"*"}, Webhook: &notify.Webhook{URL: h.srv.URL, Secret: []byte("s")}})
	cfg.Gather = notify.Duration(400 * time.Millisecond)
	cfg.Retry.First, cfg.Retry.Max = notify.Duration(time.Hour), notify.Duration(time.Hour) // no retry before the restart
	cfg.Retry.GiveUp = notify.Duration(24 * time.Hour)
	raised := time.Now().UTC().Truncate(time.Second)
	a := []wire.AlertMsg{alert("CAM-1", "battery-worn", raised), alert("CAM-2", "battery-worn", raised), alert("CAM-3", "storage-worn", raised)}
	late := alert("CAM-9", "battery-worn", raised)

	fs, err := notify.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	n, stop := start(t, notify.Options{Config: cfg, Store: fs})
	for _, m := range a {
		if err := n.Observe("dock-1", m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "a failed attempt", func() bool { return len(h.requests()) == 1 })
	if err := n.Observe("dock-2", late); err != nil {
		t.Fatal(err)
	}
	stop() // before dock-2's window ends
	failedID := h.requests()[0].msg.Delivery
	if len(h.requests()) != 1 {
		t.Fatalf("%d requests before the restart, want 1", len(h.requests()))
	}

	up.Lock()
	failing = false
	up.Unlock()
	cfg.Retry.First, cfg.Retry.Max = notify.Duration(50*time.Millisecond), notify.Duration(50*time.Millisecond)
	fs, err = notify.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	// The restarted central's attempts are due again (Next is an hour away): a clock an
	// hour on stands in for the wait.
	n, _ = start(t, notify.Options{Config: cfg, Store: fs, Now: func() time.Time { return time.Now().Add(time.Hour + time.Minute) }})
	waitFor(t, 10*time.Second, "both deliveries taken after the restart", func() bool { return len(h.taken()) == 2 })
	for _, m := range append(a, late) { // the docks send them again until acknowledged
		if err := n.Observe(map[bool]string{true: "dock-2", false: "dock-1"}[m.ID == late.ID], m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "nothing open", func() bool { o, _ := fs.Open(); return len(o) == 0 })
	if p, _ := fs.Pending(); len(p) != 0 {
		t.Fatalf("repeats after delivery are pending again: %v", p)
	}
	taken := h.taken()
	byDock := map[string]notify.Message{}
	for _, q := range taken {
		byDock[q.msg.Dock] = q.msg
	}
	if byDock["dock-1"].Delivery != failedID || len(byDock["dock-1"].Faults) != 3 {
		t.Errorf("dock-1 delivered as %s with %d faults, want the delivery that failed before the restart, %s, with 3", byDock["dock-1"].Delivery, len(byDock["dock-1"].Faults), failedID)
	}
	if len(byDock["dock-2"].Faults) != 1 || byDock["dock-2"].Faults[0].ID != late.ID {
		t.Errorf("dock-2's fault heard just before the restart: delivered %+v", byDock["dock-2"])
	}
	if len(h.requests()) != 3 {
		t.Errorf("%d requests in all, want 3 (a failure, then each dock once)", len(h.requests()))
	}
}

// Each team hears of its own docks: by the team a dock's config names, by its list, or "*".
func TestTeamsHearOfTheirDocks(t *testing.T) {
	h := newHook(t, nil)
	wh := func(team string) *notify.Webhook {
		return &notify.Webhook{URL: h.srv.URL + "/" + team, Secret: []byte(team)}
	}
	cfg := fastConfig(
		notify.Team{Name: "north", Webhook: wh("north")},
		notify.Team{Name: "south", Docks: []string{"dock-2"}, Webhook: wh("south")},
		notify.Team{Name: "all", Docks: []string{"*"}, Webhook: wh("all")},
	)
	teamOf := func(dock string) (string, error) {
		if dock == "dock-3" {
			return "north", errors.New("database busy") // dock-3 is not north's: only the lists count
		}
		return map[string]string{"dock-1": "north"}[dock], nil
	}
	n, _ := start(t, notify.Options{Config: cfg, Store: notify.NewMemStore(), TeamOf: teamOf})
	for _, dock := range []string{"dock-1", "dock-2", "dock-3"} {
		if err := n.Observe(dock, alert("CAM-"+dock, "battery-worn", time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "five deliveries", func() bool { return len(h.taken()) >= 5 })
	got := map[string][]string{}
	for _, q := range h.taken() {
		got[q.path] = append(got[q.path], q.msg.Dock)
		checkSignature(t, q.path[1:], q)
	}
	want := map[string][]string{"/north": {"dock-1"}, "/south": {"dock-2"}, "/all": {"dock-1", "dock-2", "dock-3"}}
	for path, docks := range want {
		have := map[string]bool{}
		for _, d := range got[path] {
			have[d] = true
		}
		if len(got[path]) != len(docks) {
			t.Errorf("%s heard of %v, want %v", path, got[path], docks)
		}
		for _, d := range docks {
			if !have[d] {
				t.Errorf("%s heard of %v, want %v", path, got[path], docks)
			}
		}
	}
}

// Acknowledged, in repair, cleared: nothing to tell maintenance.
func TestOnlyWaitingFaultsNotify(t *testing.T) {
	store := notify.NewMemStore()
	n, err := notify.New(notify.Options{Config: fastConfig(notify.Team{Name: "t", Docks: []string{"*"}, Webhook: &notify.Webhook{URL: "http://127.0.0.1:1/", Secret: []byte("s")}}), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{"raised", "alerted", "acknowledged", "sent-for-repair", "cleared"} {
		a := alert("CAM-"+state, "battery-worn", time.Now())
		a.State = state
		if err := n.Observe("dock-1", a); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := store.Pending()
	if len(p) != 2 || p[0].Device != "CAM-raised" && p[1].Device != "CAM-raised" {
		t.Fatalf("pending %+v, want the raised and the alerted fault", p)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("team-secret")
	now := time.Now()
	body := []byte(`{"delivery":"d1"}`)
	signed := func(ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(notify.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(notify.HeaderSignature, sig)
		return h
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{
		{"good", signed(now, notify.Sign(secret, now.Unix(), body)), body, true},
		{"other secret", signed(now, notify.Sign([]byte("other"), now.Unix(), body)), body, false},
		{"altered body", signed(now, notify.Sign(secret, now.Unix(), body)), []byte(`{"delivery":"d2"}`), false},
		{"replayed", signed(now.Add(-time.Hour), notify.Sign(secret, now.Add(-time.Hour).Unix(), body)), body, false},
		{"no timestamp", http.Header{notify.HeaderSignature: {notify.Sign(secret, now.Unix(), body)}}, body, false},
	} {
		if err := notify.Verify(secret, tc.h, tc.body, now, 5*time.Minute); (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}

// A dock raising more faults than a message carries sends several, each fault in one.
func TestHundredsOfFaultsMakeSeveralMessages(t *testing.T) {
	h := newHook(t, nil)
	n, _ := start(t, notify.Options{Store: notify.NewMemStore(), Config: fastConfig(notify.Team{Name: "t", Docks: []string{"*"},
		Webhook: &notify.Webhook{URL: h.srv.URL, Secret: []byte("s")}})})
	raised := time.Now()
	for i := 0; i < 2*notify.MaxDigest+20; i++ {
		if err := n.Observe("dock-1", alert(fmt.Sprintf("CAM-%03d", i), "storage-worn", raised)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "three messages", func() bool { return len(h.taken()) >= 3 })
	seen := map[string]bool{}
	var sizes []int
	for _, q := range h.taken() {
		sizes = append(sizes, len(q.msg.Faults))
		for _, f := range q.msg.Faults {
			if seen[f.ID] {
				t.Errorf("%s in two messages", f.ID)
			}
			seen[f.ID] = true
		}
	}
	if len(sizes) != 3 || len(seen) != 2*notify.MaxDigest+20 {
		t.Fatalf("messages of %v faults, %d distinct; want 3 messages, every fault once", sizes, len(seen))
	}
	for _, n := range sizes {
		if n > notify.MaxDigest {
			t.Fatalf("a message of %d faults, past MaxDigest %d", n, notify.MaxDigest)
		}
	}
}

// forgetfulStore fails to record the first outcome it is given, as if central died
// between the peer taking a message and the store recording it.
type forgetfulStore struct {
	*notify.MemStore
	mu     sync.Mutex
	failed bool
}

func (s *forgetfulStore) Save(d notify.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failed {
		s.failed = true
		return errors.New("disk gone")
	}
	return s.MemStore.Save(d)
}

// A message taken whose outcome could not be recorded is sent again, under the same
// delivery id for the receiver to drop, and then recorded sent.
func TestATakenMessageNotRecordedIsSentAgainUnderItsID(t *testing.T) {
	h := newHook(t, nil)
	st := &forgetfulStore{MemStore: notify.NewMemStore()}
	n, _ := start(t, notify.Options{Store: st, Config: fastConfig(notify.Team{Name: "t", Docks: []string{"*"},
		Webhook: &notify.Webhook{URL: h.srv.URL, Secret: []byte("s")}})})
	if err := n.Observe("dock-1", alert("CAM-1", "battery-worn", time.Now())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the delivery recorded sent", func() bool { o, _ := st.Open(); return len(h.taken()) >= 2 && len(o) == 0 })
	qs := h.requests()
	if len(qs) != 2 || qs[0].msg.Delivery != qs[1].msg.Delivery {
		t.Fatalf("%d requests, want the same delivery twice", len(qs))
	}
	if gap := qs[1].at.Sub(qs[0].at); gap < 50*time.Millisecond {
		t.Fatalf("sent again after %v: not before the retry's first wait (50 ms)", gap)
	}
}
