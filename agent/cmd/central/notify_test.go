package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"dock/uplink/central/fleet"
	"dock/uplink/central/notify"
	"dock/uplink/wire"
)

// -notifications: the file is read with its secret, a dock's faults reach the team its
// running config names (the fleet's DockTeam), and the delivery is kept in fleet.db: a
// central started again on the same store sends nothing for the dock's repeats.
func TestNotificationsFileWiring(t *testing.T) {
	var mu sync.Mutex
	var got []notify.Message
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte("north-secret"), r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook: %v", err)
		}
		var m notify.Message
		_ = json.Unmarshal(body, &m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	secret := filepath.Join(dir, "north.hmac")
	if err := os.WriteFile(secret, []byte("north-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "notifications.json")
	conf := fmt.Sprintf(`{"gather":"200ms","teams":[{"name":"North","webhook":{"url":%q,"secret_file":%q}}]}`, hook.URL+"/north", secret)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	db, err := fleet.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	// dock-1 runs a config of team North; dock-2 none.
	id, err := db.StartRollout(1, `{"version":1,"team":"North"}`, []string{"dock-1"}, 1, "all", "admin")
	if err == nil {
		err = db.MarkPushed(id, "dock-1", 1)
	}
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	a := wire.AlertMsg{ID: "CAM-1/battery-worn", Device: "CAM-1", Code: "battery-worn", State: "alerted", RaisedAt: time.Now().UTC().Truncate(time.Second)}
	run := func() {
		ctx, cancel := context.WithCancel(context.Background())
		n, err := startNotifications(ctx, file, db, log)
		if err != nil {
			t.Fatal(err)
		}
		o := n.Observer(db)
		for _, dock := range []string{"dock-1", "dock-2"} {
			if err := o.DockAlert(dock, a); err != nil {
				t.Fatal(err)
			}
		}
		// Until every fault is gathered and every delivery settled.
		deadline := time.Now().Add(10 * time.Second)
		for {
			p, err1 := db.Notifications().Pending()
			o, err2 := db.Notifications().Open()
			if err1 == nil && err2 == nil && len(p) == 0 && len(o) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 10 s: %d faults pending, %d deliveries open (%v %v)", len(p), len(o), err1, err2)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}
	run()
	mu.Lock()
	if len(got) != 1 || got[0].Dock != "dock-1" || got[0].Team != "North" {
		t.Fatalf("webhook got %+v, want dock-1's fault for North", got)
	}
	mu.Unlock()
	db.Close()
	if db, err = fleet.Open(store); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	run() // central again, the docks repeating their alerts
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("%d messages after the restart, want still 1", len(got))
	}
}
