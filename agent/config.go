package agent

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"dock/health"
	"dock/hw/camlink"
	"dock/uplink/configrule"
	"dock/uplink/wire"
)

// Config is the dock's local configuration file: what the dock needs before it can reach
// central. Central's pushed settings (Settings) overlay it.
type Config struct {
	Dock     string `json:"dock"`
	Board    string `json:"board"`
	DataDir  string `json:"data_dir"`
	Broker   string `json:"broker"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS: CA bundle, client certificate and key for the broker (optional).
	CAFile   string `json:"ca_file,omitempty"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`

	// CentralKey is central's Ed25519 public key (base64): configs must carry its signature.
	CentralKey string `json:"central_key"`

	// SpoolKeyFile holds the dock's age key that spool files are encrypted for. Keep it
	// off the spool's medium (an SD card pulled from the dock must not carry its key).
	SpoolKeyFile string `json:"spool_key_file"`

	// CameraPassword unlocks the storage of cameras not yet provisioned; used only when
	// CameraSecretFile is empty.
	CameraPassword string `json:"camera_password"`
	// CameraSecretFile holds the fleet camera secret central provisions: each camera's
	// storage password is camlink.StoragePassword(secret, its serial). Like the spool key,
	// it lives on the root filesystem, mode 0600, owned by the agent's user.
	CameraSecretFile string `json:"camera_secret_file,omitempty"`
	// SpoolReserve is the free space (bytes) offload never eats into.
	SpoolReserve int64 `json:"spool_reserve"`
	// Poll is how often a docked camera is read while it charges.
	Poll wire.Duration `json:"poll"`
	// Debounce is how long a presence line must hold a new level.
	Debounce    wire.Duration `json:"debounce"`
	LinkTimeout wire.Duration `json:"link_timeout"`
	LinkRetries int           `json:"link_retries"`
	// CopyStall fails a copy whose source delivers nothing for this long.
	CopyStall wire.Duration `json:"copy_stall"`
	// ControlSocket is the maintenance socket dockctl talks to (default: data_dir/ctl.sock).
	ControlSocket string `json:"control_socket,omitempty"`
	// ShiftDrawMAh is a camera's draw per hour of recording, for the 12-hour-shift verdict.
	ShiftDrawMAh int `json:"shift_draw_mah"`
	// MetricsAddr serves Prometheus metrics on a local address ("" disables).
	MetricsAddr string `json:"metrics_addr"`
	// RollbackAfter returns to the previous config when the broker stays unreachable this
	// long after a config change.
	RollbackAfter wire.Duration `json:"rollback_after"`
	// ChargeCeiling stops charging at this percentage (long-life charging); 100 charges full.
	ChargeCeiling int `json:"charge_ceiling"`

	// ClockSync says who can tell whether the dock's clock is synchronised: "system"
	// (timesyncd or the kernel; a real board) or "none" (the simulator). An unsynchronised
	// clock never sets camera clocks, and recordings are stamped clock unverified.
	ClockSync string `json:"clock_sync"`

	// Defaults for what central may later push.
	Team       string            `json:"team"`
	Thresholds health.Thresholds `json:"thresholds"`
}

// DefaultConfig is a dock's configuration before its file is read.
func DefaultConfig() Config {
	return Config{
		Board: "rpi-cm4-dock4", DataDir: "/var/lib/dock-agent", Broker: "tcp://127.0.0.1:1883",
		CameraPassword: "000000", SpoolReserve: 512 << 20, SpoolKeyFile: "/etc/dock-agent/spool.key",
		Poll: wire.Duration(30 * time.Second), Debounce: wire.Duration(50 * time.Millisecond),
		LinkTimeout: wire.Duration(time.Second), LinkRetries: 2, ChargeCeiling: 100, CopyStall: wire.Duration(30 * time.Second),
		ClockSync: ClockSyncSystem, Team: "unassigned", Thresholds: health.DefaultThresholds(), MetricsAddr: "127.0.0.1:9464", ShiftDrawMAh: 200, RollbackAfter: wire.Duration(10 * time.Minute),
	}
}

// Check rejects a configuration the agent cannot run with.
func (c Config) Check() error {
	switch {
	case !camlink.ValidName(c.Dock):
		return fmt.Errorf("dock id %q: 1-64 letters, digits, '-' or '_'", c.Dock)
	case c.DataDir == "":
		return fmt.Errorf("data_dir is empty")
	case c.SpoolKeyFile == "":
		return fmt.Errorf("spool_key_file is empty: footage is never stored in the clear")
	case c.Broker == "":
		return fmt.Errorf("broker is empty")
	case checkBrokerURL(c.Broker) != nil:
		return checkBrokerURL(c.Broker)
	case c.SpoolReserve < 0:
		return fmt.Errorf("spool_reserve is negative")
	case time.Duration(c.Poll) < 100*time.Millisecond:
		return fmt.Errorf("poll %s under 100ms", time.Duration(c.Poll))
	case c.RollbackAfter.D() < time.Second:
		return fmt.Errorf("rollback_after %s under 1s", c.RollbackAfter.D())
	case time.Duration(c.CopyStall) < 100*time.Millisecond:
		return fmt.Errorf("copy_stall %s under 100ms", time.Duration(c.CopyStall))
	case time.Duration(c.LinkTimeout) < 10*time.Millisecond || c.LinkRetries < 0:
		return fmt.Errorf("link_timeout or link_retries out of range")
	case c.CentralKey != "" && !validKey(c.CentralKey):
		return fmt.Errorf("central_key is not a base64 Ed25519 public key")
	case c.ShiftDrawMAh < 1 || c.ShiftDrawMAh > 5000:
		return fmt.Errorf("shift_draw_mah %d not in 1..5000", c.ShiftDrawMAh)
	case c.ClockSync != ClockSyncSystem && c.ClockSync != ClockSyncNone:
		return fmt.Errorf("clock_sync %q: %q or %q", c.ClockSync, ClockSyncSystem, ClockSyncNone)
	case c.ChargeCeiling < 50 || c.ChargeCeiling > 100:
		return fmt.Errorf("charge_ceiling %d not in 50..100", c.ChargeCeiling)
	}
	if c.CameraSecretFile != "" {
		if _, err := loadCameraSecret(c.CameraSecretFile); err != nil {
			return err
		}
	}
	return c.Thresholds.Check()
}

// checkBrokerURL refuses a broker the dock would talk to in the clear over a network:
// plaintext MQTT (tcp://, mqtt://, ws://) only to loopback (the embedded broker, a local
// bridge); anything else over TLS (ssl://, tls://, mqtts://, wss://), where the broker
// password, the chunks and central's commands cannot be read or changed on the wire.
func checkBrokerURL(broker string) error {
	u, err := url.Parse(broker)
	if err != nil {
		return fmt.Errorf("broker %q: %w", broker, err)
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "wss":
		return nil
	case "tcp", "mqtt", "ws":
	default:
		return fmt.Errorf("broker %q: scheme %q is not one of tcp, ssl, tls, mqtt, mqtts, ws, wss", broker, u.Scheme)
	}
	if !isLoopback(u.Hostname()) {
		return fmt.Errorf("broker %q: plaintext MQTT (%s://) to a host that is not loopback: use ssl:// with ca_file", broker, u.Scheme)
	}
	return nil
}

// isLoopback says whether host (no port) is this machine: localhost or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validKey(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) == ed25519.PublicKeySize
}

// centralKey decodes CentralKey; nil when none is configured.
func (c Config) centralKey() ed25519.PublicKey {
	b, err := base64.StdEncoding.DecodeString(c.CentralKey)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil
	}
	return b
}

// CentralPublicKey is central's public key (central_key), which every message from
// central must be signed with (uplink.Options.CentralKey); nil when none is configured.
func (c Config) CentralPublicKey() ed25519.PublicKey { return c.centralKey() }

// ControlSocketPath is where the agent serves dockctl: ControlSocket, else data_dir/ctl.sock.
func (c Config) ControlSocketPath() string {
	if c.ControlSocket != "" {
		return c.ControlSocket
	}
	return filepath.Join(c.DataDir, "ctl.sock")
}

// LoadConfig reads a JSON config file over the defaults.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, c.Check()
}

// Settings are what central controls: they start from the local config and change only
// through a validated config push.
type Settings struct {
	Version            int64             `json:"version"`
	Team               string            `json:"team"`
	Officers           map[string]string `json:"officers,omitempty"`
	Thresholds         health.Thresholds `json:"thresholds"`
	Blocked            map[string]bool   `json:"blocked,omitempty"`
	AlertEvery         time.Duration     `json:"alert_every"`
	TelemetryEvery     time.Duration     `json:"telemetry_every"`
	DeleteAfterReceipt bool              `json:"delete_after_receipt"`
	DockLimits         health.DockLimits `json:"dock_limits"`
	DueOut             map[string]bool   `json:"due_out,omitempty"`
	// RolledBack is the newest version the dock undid; it and older never apply again.
	RolledBack int64 `json:"rolled_back,omitempty"`
}

func initialSettings(c Config) Settings {
	return Settings{Team: c.Team, Thresholds: c.Thresholds, AlertEvery: 30 * time.Second, TelemetryEvery: 10 * time.Second, DockLimits: health.DefaultDockLimits()}
}

// apply validates a config push against the current settings and returns the new
// settings, or the reason it is refused. Nothing is changed on error.
func (s Settings) apply(m wire.ConfigMsg) (Settings, error) {
	if m.Version <= s.Version {
		return s, fmt.Errorf("version %d is not newer than %d", m.Version, s.Version)
	}
	if m.Version <= s.RolledBack {
		return s, fmt.Errorf("version %d was rolled back (the broker was unreachable after it): send a newer one", m.Version)
	}
	n := s
	n.Version = m.Version
	// The field rules are configrule's, which central's console applies before signing.
	if err := configrule.Team(m.Team); err != nil {
		return s, err
	}
	n.Team = m.Team
	var err error
	if n.Officers, err = configrule.Officers(m.Officers); err != nil {
		return s, err
	}
	if n.Thresholds, err = configrule.Thresholds(s.Thresholds, m.Thresholds); err != nil {
		return s, err
	}
	if n.Blocked, err = configrule.DeviceSet("blocked", m.Blocked); err != nil {
		return s, err
	}
	if n.DueOut, err = configrule.DeviceSet("due_out", m.DueOut); err != nil {
		return s, err
	}
	if n.AlertEvery, err = configrule.Period("alert_every", m.AlertEvery, s.AlertEvery, configrule.MinAlertEvery, configrule.MaxAlertEvery); err != nil {
		return s, err
	}
	if n.TelemetryEvery, err = configrule.Period("telemetry_every", m.TelemetryEvery, s.TelemetryEvery, configrule.MinTelemetryEvery, configrule.MaxTelemetryEvery); err != nil {
		return s, err
	}
	n.DeleteAfterReceipt = m.DeleteAfterReceipt
	return n, nil
}
