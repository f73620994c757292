package agent

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syscallsOutsideSystemService are the calls the agent's code makes whose system call
// systemd's @system-service set leaves out: the shipped unit must allow each, or its
// seccomp filter kills the agent (SIGSYS) when the call is first made. Seen on the emulated
// arm64 board (build/vm): the clock check's adjtimex killed the agent at every docking, a
// crash loop in which no camera was ever offloaded.
var syscallsOutsideSystemService = map[string]string{
	"unix.Adjtimex(": "adjtimex",
}

func TestShippedUnitAllowsTheAgentsSystemCalls(t *testing.T) {
	unit, err := os.ReadFile("../build/package/dock-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(unit)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "SystemCallFilter="); ok && !strings.HasPrefix(v, "~") {
			for _, name := range strings.Fields(v) {
				allowed[name] = true
			}
		}
	}
	if !allowed["@system-service"] {
		t.Fatalf("the unit's filter no longer starts from @system-service: %v (update this test with it)", allowed)
	}
	used := map[string]string{}
	for _, dir := range []string{".", "../hw", "../hw/camlink", "../queue", "../uplink", "../health", "../board"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for call, name := range syscallsOutsideSystemService {
				if strings.Contains(string(b), call) {
					used[name] = f
				}
			}
		}
	}
	if len(used) == 0 {
		t.Fatal("no call of the list found: the scan is broken (the clock check calls unix.Adjtimex)")
	}
	for name, f := range used {
		if !allowed[name] {
			t.Errorf("%s makes the %s system call, which @system-service leaves out, and the shipped unit does not allow it: its filter kills the agent", f, name)
		}
	}
}
