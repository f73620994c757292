package vm

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	dockboard "dock/board"
	"dock/build/udev"
	"dock/uplink/brokertls"
	"dock/uplink/central"
	"dock/uplink/mqttconn"
	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// dockID is the emulated dock's id: its certificate's CN, its topics.
const dockID = "vm-dock-1"

// world is the host's side of the emulated board: the broker (TLS, the shipped ACL), the
// central receiver, the dock's certificate and central's key, the package to install.
type world struct {
	t     *testing.T
	dir   string
	im    images
	deb   string
	pki   *mqtttest.PKI
	mq    *mqtttest.Broker
	rcv   *central.Receiver
	store central.FileStore
	pub   string // central's public key, the dock's central_key
	watch *mqttconn.Conn
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// longOnly skips unless the long runs are asked for (make test-long, make test-vm-long).
func longOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("DOCK_LONG") == "" {
		t.Skip("the emulated board with the shipped package boots a Debian root file system (minutes): DOCK_LONG=1 (make test-vm-long)")
	}
	if runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		t.Skipf("the emulated board runs from a linux/amd64 host, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
}

// packageFile is the newest arm64 .deb make package left in build/out.
func packageFile(t *testing.T) string {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join("..", "out", "dock-agent_*_arm64.deb"))
	if len(debs) == 0 {
		t.Skip("no build/out/dock-agent_*_arm64.deb: make package (make test-vm-long builds it)")
	}
	sort.Slice(debs, func(i, j int) bool {
		a, _ := os.Stat(debs[i])
		b, _ := os.Stat(debs[j])
		return a.ModTime().Before(b.ModTime())
	})
	abs, _ := filepath.Abs(debs[len(debs)-1])
	return abs
}

func newWorld(t *testing.T, ctx context.Context) *world {
	t.Helper()
	longOnly(t)
	w := &world{t: t, dir: t.TempDir(), im: findImages(t), deb: packageFile(t)}
	if err := os.MkdirAll(filepath.Join(w.dir, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	w.pki = mqtttest.NewPKI(t, filepath.Join(w.dir, "pki"))
	acl, _ := filepath.Abs(filepath.Join("..", "mosquitto", "acl"))
	w.mq = mqtttest.StartTLS(t, w.pki, acl, mqtttest.WithServerIPs(net.ParseIP("10.0.2.2")))
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	w.pub = base64.StdEncoding.EncodeToString(pub)
	w.store = central.FileStore{Dir: filepath.Join(w.dir, "central")}
	w.rcv, err = central.Start(ctx, central.Options{Broker: w.mq.URL, ClientID: "central", TLS: w.tls("central"),
		Store: w.store, ChunkSize: 64 << 10, Window: 8, SigningKey: priv}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.rcv.Close)
	// The office's view of the dock's status (central's identity, another client id).
	w.watch, err = mqttconn.Dial(ctx, mqttconn.Options{Broker: w.mq.URL, ClientID: "office-watch", TLS: w.tls("central"),
		Subscriptions: map[string]byte{wire.DockTopic(dockID, wire.TopicStatus): 1}, CleanSession: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.watch.Close)
	return w
}

func (w *world) tls(cn string) *tls.Config {
	cert, key := w.pki.Issue(cn, false)
	c, err := brokertls.Config(w.pki.CAFile, cert, key)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// newDisk copies the root file system image for one test (sparse).
func (w *world) newDisk() string {
	disk := filepath.Join(w.dir, "root.img")
	if out, err := exec.Command("cp", "--sparse=always", w.im.Rootfs, disk).CombinedOutput(); err != nil {
		w.t.Fatalf("copy root image: %v %s", err, out)
	}
	return disk
}

// waitStatus waits for the dock's retained status to say state (online, offline).
func (w *world) waitStatus(ctx context.Context, state string) (wire.StatusMsg, error) {
	for {
		select {
		case <-ctx.Done():
			return wire.StatusMsg{}, fmt.Errorf("dock never %s: %w", state, ctx.Err())
		case m := <-w.watch.Inbox():
			var s wire.StatusMsg
			if json.Unmarshal(m.Payload, &s) == nil && s.State == state {
				return s, nil
			}
		}
	}
}

// gpioSimScript lays the bays of board b out on a gpio-sim chip in the guest, as the
// board's real lines would be: one bank of 28 lines (the BCM2711's user GPIOs), each named
// as the board names it, and links the simulator's side at /run/dock-gpio-sim, where the
// test raises a camera's presence. The emulated board's hardware, not the dock's software.
func gpioSimScript(b dockboard.Board) string {
	var lines []string
	for _, s := range b.Slots {
		for _, name := range []string{s.Presence, s.Charge, s.Fault} {
			lines = append(lines, strings.TrimPrefix(name, "GPIO")+":"+name)
		}
	}
	return `#!/bin/sh
set -e
modprobe gpio-sim
[ -d /sys/kernel/config/gpio-sim ] || mount -t configfs none /sys/kernel/config
base=/sys/kernel/config/gpio-sim/dock
if [ ! -d $base ]; then
  mkdir -p $base/bank0
  echo 28 > $base/bank0/num_lines
  echo dock-sim > $base/bank0/label
  for l in ` + strings.Join(lines, " ") + `; do
    mkdir $base/bank0/line${l%%:*}
    echo ${l#*:} > $base/bank0/line${l%%:*}/name
  done
  echo 1 > $base/live
fi
ln -sfn /sys/devices/platform/$(cat $base/dev_name)/$(cat $base/bank0/chip_name) /run/dock-gpio-sim
`
}

const journalToConsole = `[Journal]
ForwardToConsole=yes
TTYPath=/dev/ttyAMA0
MaxLevelConsole=info
`

const gpioSimUnit = `[Unit]
Description=Emulated dock board: the bays' GPIO lines on gpio-sim (test hardware)
Before=dock-agent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/dock-gpio-sim

[Install]
WantedBy=multi-user.target
`

// dockConfig is the shipped config.json as an operator edits it for this dock.
func (w *world) dockConfig() []byte {
	raw, err := os.ReadFile(filepath.Join("..", "package", "config.json"))
	if err != nil {
		w.t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		w.t.Fatal(err)
	}
	c["dock"] = dockID
	c["broker"] = fmt.Sprintf("ssl://10.0.2.2:%d", w.mq.Port)
	c["central_key"] = w.pub
	c["spool_reserve"] = 64 << 20
	c["poll"] = "2s"
	c["link_timeout"] = "2s"
	c["team"] = "vm-team"
	out, _ := json.MarshalIndent(c, "", "  ")
	return out
}

// install does what an operator does on a fresh board: the board's lines (the test's
// hardware), then dpkg -i of the package, the dock's certificates and its config, and a
// restart of the service. It returns how long the service took to report ready.
func (w *world) install(ctx context.Context, b *board) time.Duration {
	t := w.t
	t.Helper()
	if err := b.writeFile(ctx, "/usr/local/sbin/dock-gpio-sim", []byte(gpioSimScript(dockboard.CM4Dock))); err != nil {
		t.Fatal(err)
	}
	if err := b.writeFile(ctx, "/etc/systemd/system/dock-gpio-sim.service", []byte(gpioSimUnit)); err != nil {
		t.Fatal(err)
	}
	b.mustSh(ctx, "mkdir -p /etc/systemd/journald.conf.d && chmod 755 /usr/local/sbin/dock-gpio-sim && systemctl daemon-reload && systemctl enable --now dock-gpio-sim.service")
	// The board's console carries the journal as it is written (the test's log of the
	// guest: it survives a power cut, and a failing wait prints its tail).
	if err := b.writeFile(ctx, "/etc/systemd/journald.conf.d/50-console.conf", []byte(journalToConsole)); err != nil {
		t.Fatal(err)
	}
	b.mustSh(ctx, "systemctl restart systemd-journald.service")

	deb, err := os.ReadFile(w.deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.writeFile(ctx, "/root/"+filepath.Base(w.deb), deb); err != nil {
		t.Fatal(err)
	}
	out := b.mustSh(ctx, "dpkg -i /root/"+filepath.Base(w.deb)+" 2>&1")
	t.Logf("dpkg -i %s:\n%s", filepath.Base(w.deb), strings.TrimSpace(out))
	if st, _ := b.sh(ctx, "systemctl is-enabled dock-agent.service; systemctl is-active dock-agent.service"); st != "enabled\ninactive\n" {
		t.Errorf("after dpkg -i with the shipped config (dock id unset) the service is %q, want enabled and inactive", st)
	}
	// The carrier's USB topology, as an operator adapts the shipped rules to a board after
	// installing: a file of the same name in /etc/udev/rules.d overrides the package's. (Written
	// before dpkg -i, udev loads it while the gpio group does not exist yet, and neither the
	// postinst's reload nor its trigger makes it resolve the group: GPIO stays root's.)
	if err := b.writeFile(ctx, "/etc/udev/rules.d/70-dock-bays.rules", []byte(udev.Rules(udev.QemuVirt))); err != nil {
		t.Fatal(err)
	}
	b.mustSh(ctx, "udevadm control --reload-rules && udevadm trigger --settle --action=change --subsystem-match=gpio --subsystem-match=tty")

	cert, key := w.pki.Issue(dockID, false)
	for _, f := range []struct{ src, dst string }{{w.pki.CAFile, "ca.pem"}, {cert, "dock.pem"}, {key, "dock.key"}} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.writeFile(ctx, "/etc/dock-agent/"+f.dst, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.writeFile(ctx, "/etc/dock-agent/config.json.new", w.dockConfig()); err != nil {
		t.Fatal(err)
	}
	b.mustSh(ctx, `cd /etc/dock-agent && chown dock-agent:dock-agent dock.key && chmod 600 dock.key && chmod 644 ca.pem dock.pem &&
chgrp dock-agent config.json.new && chmod 640 config.json.new && mv config.json.new config.json`)
	// The operator's files reach the disk before anything else happens (a power cut soon
	// after would otherwise leave them empty: ext4 writes file data back within 30 s).
	b.mustSh(ctx, "sync")
	start := time.Now()
	if out, err := b.sh(ctx, "systemctl restart dock-agent.service"); err != nil {
		j, _ := b.sh(ctx, "journalctl -b -u dock-agent.service --no-pager | tail -40")
		t.Fatalf("systemctl restart dock-agent: %v %s\n%s", err, out, j)
	}
	return time.Since(start)
}

// serviceState is what systemd says of the agent's unit.
func serviceState(ctx context.Context, b *board) (map[string]string, error) {
	out, err := b.sh(ctx, "systemctl show dock-agent.service -p ActiveState -p SubState -p Type -p NRestarts -p WatchdogUSec -p WatchdogTimestampMonotonic -p MainPID -p ExecMainStartTimestampMonotonic -p StatusErrno -p Result")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m, nil
}
