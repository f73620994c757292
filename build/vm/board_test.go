package vm

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestShippedPackageOnArm64Board boots the Debian arm64 board, installs the dock's .deb
// with dpkg -i as an operator would, and requires the dock-agent service to start by its
// unit (Type=notify: ready only once the agent says so; the watchdog armed), read its
// config and come online at central through the broker on the host.
func TestShippedPackageOnArm64Board(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	w := newWorld(t, ctx)
	disk := w.newDisk()

	b := bootBoard(t, w.im, w.dir, disk, "boot1")
	booted := time.Since(b.started)
	t.Logf("boot: qemu start to the guest agent answering %s", booted.Round(100*time.Millisecond))
	ready := w.install(ctx, b)
	st, err := w.waitStatus(ctx, "online")
	if err != nil {
		j, _ := b.sh(ctx, "journalctl -b -u dock-agent.service --no-pager | tail -60")
		t.Fatalf("%v\nagent journal:\n%s", err, j)
	}
	online := time.Since(b.started)
	t.Logf("systemctl restart returned after %s (Type=notify: READY=1); online at central (version %s) %s after qemu start",
		ready.Round(100*time.Millisecond), st.Version, online.Round(100*time.Millisecond))
	svc, err := serviceState(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dock-agent.service: %v", svc)
	if svc["ActiveState"] != "active" || svc["SubState"] != "running" || svc["Type"] != "notify" || svc["NRestarts"] != "0" {
		t.Errorf("dock-agent.service %v: want active, running, Type=notify, no restarts", svc)
	}
	if svc["WatchdogUSec"] != "1min" {
		t.Errorf("the watchdog is %q, want the unit's 1min", svc["WatchdogUSec"])
	}
	if svc["WatchdogTimestampMonotonic"] == "0" || svc["WatchdogTimestampMonotonic"] == "" {
		t.Errorf("systemd never heard the agent's watchdog keep-alive: %v", svc)
	}
	if out := b.mustSh(ctx, "journalctl -b -u dock-agent.service --no-pager -o cat"); !strings.Contains(out, dockID) {
		t.Errorf("the agent's journal never names its dock id %s: did it read its config?\n%s", dockID, out)
	}

	b.poweroff()
}
