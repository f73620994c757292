package agent_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The dock binary links no simulator, no central receiver, no test support.
func TestDockBinaryDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "dock/agent/cmd/dockagent").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	forbidden := []string{"dock/board/sim", "dock/agent/simrun", "dock/uplink/central", "dock/uplink/central/notify", "dock/uplink/mqtttest", "dock/hw/hwtest", "testing", "dock/build/sqlitequeue", "modernc.org/sqlite"}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f {
				t.Errorf("dockagent links %s", d)
			}
		}
		// The console's browser tests' driver, and the SMTP test server, are for tests.
		for _, prefix := range []string{"github.com/chromedp/", "github.com/axllent/mailpit"} {
			if strings.HasPrefix(d, prefix) {
				t.Errorf("dockagent links %s", d)
			}
		}
	}
	// health stays pure: it imports only value-level standard packages.
	out, err = exec.Command("go", "list", "-f", `{{join .Imports " "}}`, "dock/health").Output()
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json is a codec of values (thresholds read as configs carry them), no I/O.
	pure := map[string]bool{"fmt": true, "time": true, "errors": true, "sort": true, "math": true, "strings": true, "encoding/json": true}
	for _, d := range strings.Fields(string(out)) {
		if !pure[d] {
			t.Errorf("health imports %s", d)
		}
	}
}

// central and dockctl link none of the dock agent's database, GPIO or metrics code: they
// take the broker's TLS settings (uplink/brokertls), the version (agent/version) and the
// control socket's views (agent/ctlview) from small packages, never package agent.
func TestToolBinariesDependencies(t *testing.T) {
	forbidden := []struct {
		prefix string
		exact  bool
	}{
		{"dock/agent", true},
		{"github.com/dgraph-io/badger", false},
		{"periph.io/", false},
		{"github.com/prometheus/", false},
	}
	for _, prog := range []string{"central", "dockctl"} {
		t.Run(prog, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "dock/agent/cmd/"+prog).Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range strings.Fields(string(out)) {
				for _, f := range forbidden {
					if d == f.prefix || !f.exact && strings.HasPrefix(d, f.prefix) {
						t.Errorf("%s links %s", prog, d)
						break
					}
				}
			}
		})
	}
}

// Every package says what it owns.
func TestEveryPackageHasADocComment(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}\t{{.Doc}}", "dock/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, doc, _ := strings.Cut(line, "\t")
		if strings.TrimSpace(doc) == "" {
			t.Errorf("%s has no package doc comment", path)
		}
	}
}
