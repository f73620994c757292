//go:build crosstest

// Package crosstest checks the ARM builds: they compile with CGO_ENABLED=0 and start under
// qemu-user, printing their version. Run by make test-cross.
package crosstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestARMBuildsStartUnderQemu(t *testing.T) {
	targets := []struct{ goarch, goarm, qemu string }{
		{"arm64", "", "qemu-aarch64-static"},
		{"arm", "7", "qemu-arm-static"},
	}
	for _, tc := range targets {
		t.Run(tc.goarch, func(t *testing.T) {
			q, err := exec.LookPath(tc.qemu)
			if err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s missing: CI must install qemu-user-static", tc.qemu)
				}
				t.Skipf("skipping: %s not installed (apt-get install qemu-user-static)", tc.qemu)
			}
			for _, prog := range []string{"dockagent", "central", "dockctl"} {
				bin := filepath.Join(t.TempDir(), prog)
				build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X dock/agent/version.Version=crosstest-1", "-o", bin, "dock/agent/cmd/"+prog)
				build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tc.goarch, "GOARM="+tc.goarm)
				if out, err := build.CombinedOutput(); err != nil {
					t.Fatalf("build %s for %s: %v\n%s", prog, tc.goarch, err, out)
				}
				file, _ := exec.Command("file", bin).Output()
				t.Logf("%s", strings.TrimSpace(string(file)))
				if prog == "dockctl" {
					continue // no version flag: it talks to an agent
				}
				out, err := exec.Command(q, bin, "-version").CombinedOutput()
				if err != nil {
					t.Fatalf("%s %s -version: %v\n%s", tc.qemu, prog, err, out)
				}
				if !strings.Contains(string(out), "crosstest-1") {
					t.Fatalf("%s printed %q, not its version", prog, out)
				}
				if prog == "dockagent" && !strings.Contains(string(out), "linux/"+tc.goarch) {
					t.Fatalf("dockagent says %q, not linux/%s", out, tc.goarch)
				}
			}
		})
	}
}
