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

// devicesByDriver is how each driver the shipped unit allows by name (DeviceAllow=char-X)
// gets into /proc/devices: built into the boards' kernels, or registered by a module. systemd
// resolves the names when the unit starts, so a module's driver must be loaded at boot
// (build/package/modules-load.conf), not on the first hot-plug: on the emulated arm64 board
// the first camera's /dev/ttyUSB0 was refused (EPERM) and nothing was offloaded.
var devicesByDriver = map[string]string{
	"gpiochip": "", // GPIO_CDEV=y
	"ttyS":     "", // the 8250 UART driver
	"ttyUSB":   "usbserial",
	"ttyACM":   "cdc_acm",
}

func TestShippedUnitsDeviceDriversAreLoadedAtBoot(t *testing.T) {
	unit, err := os.ReadFile("../build/package/dock-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("../build/package/modules-load.conf")
	if err != nil {
		t.Fatalf("the package's modules-load.d file: %v", err)
	}
	nfpm, err := os.ReadFile("../build/package/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(nfpm), "src: build/package/modules-load.conf\n    dst: /usr/lib/modules-load.d/") {
		t.Errorf("the package does not install build/package/modules-load.conf into /usr/lib/modules-load.d")
	}
	loaded := map[string]bool{}
	for _, l := range strings.Split(string(conf), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			loaded[l] = true
		}
	}
	n := 0
	for _, l := range strings.Split(string(unit), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "DeviceAllow=char-")
		if !ok {
			continue
		}
		n++
		driver := strings.Fields(v)[0]
		module, known := devicesByDriver[driver]
		switch {
		case !known:
			t.Errorf("the unit allows char-%s: say in devicesByDriver whether a module registers it", driver)
		case module != "" && !loaded[module]:
			t.Errorf("the unit allows char-%s, which module %s registers, but the package does not load %s at boot: the first camera's port is refused until the agent restarts", driver, module, module)
		}
	}
	if n == 0 {
		t.Fatal("no DeviceAllow=char- line in the unit: the scan is broken")
	}
}
