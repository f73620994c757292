package main

import (
	"os"
	"path/filepath"
	"testing"
)

// dockctl finds the agent where the agent listens: on a board installed from the package,
// the shipped config's control_socket (before, dockctl looked in /var/lib/dock-agent and an
// operator's dockctl on the emulated board found no agent).
func TestControlSocketIsTheConfigs(t *testing.T) {
	dir := t.TempDir()
	noSocket := filepath.Join(dir, "no-socket.json")
	if err := os.WriteFile(noSocket, []byte(`{"dock":"d","data_dir":"/data/dock"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ config, want string }{
		{filepath.Join("..", "..", "..", "build", "package", "config.json"), "/run/dock-agent/ctl.sock"},
		{noSocket, "/data/dock/ctl.sock"},
		{filepath.Join(dir, "missing.json"), "/var/lib/dock-agent/ctl.sock"},
	} {
		if got := controlSocket(c.config); got != c.want {
			t.Errorf("config %s: dockctl would call %s, the agent listens on %s", c.config, got, c.want)
		}
	}
}
