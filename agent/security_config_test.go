package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dock/hw/camlink"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Dock = "dock-1"
	return c
}

// Plaintext MQTT goes to loopback only: a broker password or central's commands never
// cross a network in the clear.
func TestConfigRefusesPlaintextRemoteBroker(t *testing.T) {
	for _, tc := range []struct {
		broker string
		ok     bool
	}{
		{"tcp://127.0.0.1:1883", true},
		{"tcp://localhost:1883", true},
		{"tcp://[::1]:1883", true},
		{"mqtt://127.0.0.2:1883", true},
		{"ws://localhost:8080/mqtt", true},
		{"ssl://mqtt.central.example:8883", true},
		{"ssl://10.0.0.5:8883", true},
		{"wss://mqtt.central.example/mqtt", true},
		{"tcp://10.0.0.5:1883", false},
		{"tcp://mqtt.central.example:1883", false},
		{"tcp://:1883", false},
		{"ws://10.0.0.5:8080/mqtt", false},
		{"mqtt://192.168.1.2:1883", false},
		{"ftp://127.0.0.1", false},
	} {
		t.Run(tc.broker, func(t *testing.T) {
			c := validConfig()
			c.Broker, c.Password = tc.broker, "fleet-password"
			err := c.Check()
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func writeSecret(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "camera.secret")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each camera gets its own storage password derived from its serial under the fleet
// secret; the fleet-wide camera_password is used only with no secret configured.
func TestCameraPassword(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	good := writeSecret(t, secret+"\n", 0o600)
	for _, tc := range []struct {
		name, file, serial, want, err string
	}{
		{name: "no secret: fleet password", serial: "CAM-1", want: "000000"},
		{name: "derived", file: good, serial: "CAM-1", want: camlink.StoragePassword([]byte(secret), "CAM-1")},
		{name: "derived, other camera", file: good, serial: "CAM-2", want: camlink.StoragePassword([]byte(secret), "CAM-2")},
		{name: "no serial", file: good, serial: "", err: "no serial"},
		{name: "missing file", file: filepath.Join(t.TempDir(), "none"), serial: "CAM-1", err: "no such file"},
		{name: "group-readable", file: writeSecret(t, secret, 0o640), serial: "CAM-1", err: "mode 0640"},
		{name: "short", file: writeSecret(t, "short", 0o600), serial: "CAM-1", err: "at least 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.CameraSecretFile = tc.file
			got, err := c.cameraPassword(tc.serial)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want error with %q", got, err, tc.err)
				}
				if cerr := c.Check(); tc.serial != "" && cerr == nil {
					t.Error("Check accepts the config")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if err := c.Check(); err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
	if a, _ := (Config{CameraSecretFile: good}).cameraPassword("CAM-1"); a == "000000" {
		t.Error("fleet password sent with a secret configured")
	}
}
