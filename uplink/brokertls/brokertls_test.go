package brokertls

import (
	"os"
	"strings"
	"testing"

	"dock/uplink/mqtttest"
)

// The broker TLS key must be the agent's alone, like the spool key.
func TestConfigRefusesLooseKey(t *testing.T) {
	pki := mqtttest.NewPKI(t, t.TempDir())
	cert, key := pki.Issue("dock-1", false)
	if _, err := Config(pki.CAFile, cert, key); err != nil {
		t.Fatalf("key of mode 0600 refused: %v", err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Config(pki.CAFile, cert, key)
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("world-readable key: %v", err)
	}
}
