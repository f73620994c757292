package fleet

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"dock/uplink/wire"
)

// helperEnv makes the test binary the helper process that writes until it is killed.
const helperEnv = "FLEET_KILL_HELPER_DIR"

// TestMain runs the helper when the kill test starts the test binary as one.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		killHelper(dir)
		return
	}
	os.Exit(m.Run())
}

// killHelper writes faults, fault steps and audit lines as fast as it can, printing
// "acked N" once the N-th write returned, until it is killed.
func killHelper(dir string) {
	db, err := Open(dir)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	start, _ := strconv.Atoi(os.Getenv("FLEET_KILL_START"))
	for n := start; ; n++ {
		id := fmt.Sprintf("CAM-%d/battery-worn", n)
		if err := db.DockAlert("dock-k", wire.AlertMsg{ID: id, Device: fmt.Sprintf("CAM-%d", n), Code: "battery-worn", State: "alerted", RaisedAt: time.Now(), Attempt: 1}); err != nil {
			fmt.Println("alert:", err)
			os.Exit(1)
		}
		if _, err := db.FaultStep("dock-k", id, FaultAcknowledged, "maint", "", ""); err != nil {
			fmt.Println("step:", err)
			os.Exit(1)
		}
		if err := db.Audit("maint", "kill-test", strconv.Itoa(n), ""); err != nil {
			fmt.Println("audit:", err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", n)
	}
}

// helperCommand runs this test binary again as the helper: natively, or under the
// qemu-user emulator this binary runs under when it is an ARM build (make test-arm runs
// the suite with -exec qemu-*-static and the host may have no binfmt_misc entry for it).
func helperCommand(t *testing.T) *exec.Cmd {
	emulator := map[string]string{"arm": "qemu-arm-static", "arm64": "qemu-aarch64-static"}[runtime.GOARCH]
	host, _ := exec.Command("uname", "-m").Output()
	native := map[string]string{"arm": "armv7l", "arm64": "aarch64"}[runtime.GOARCH]
	if emulator != "" && strings.TrimSpace(string(host)) != native {
		path, err := exec.LookPath(emulator)
		if err != nil {
			t.Skipf("this %s test binary runs emulated and %s is not installed to run its helper", runtime.GOARCH, emulator)
		}
		return exec.Command(path, os.Args[0], "-test.run=^$")
	}
	return exec.Command(os.Args[0], "-test.run=^$")
}

// A process holding the database is killed with SIGKILL while it writes; everything it
// was told was written (the call returned) is there after, each time, and the database
// opens and takes writes again.
func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	next := 0
	for round := range 3 {
		cmd := helperCommand(t)
		cmd.Env = append(os.Environ(), helperEnv+"="+dir, "FLEET_KILL_START="+strconv.Itoa(next))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked, want := -1, next+20+round*15
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			n, err := strconv.Atoi(strings.TrimPrefix(line, "acked "))
			if err != nil {
				t.Fatalf("helper: %s", line)
			}
			acked = n
			if n >= want {
				break
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for sc.Scan() { // what it acknowledged before the kill landed counts too
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "acked ")); err == nil {
				acked = n
			}
		}
		_ = cmd.Wait()
		if acked < want {
			t.Fatalf("round %d: helper stopped at %d before being killed", round, acked)
		}
		db, err := Open(dir)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		faults, err := db.Faults()
		if err != nil {
			t.Fatal(err)
		}
		steps := map[string]bool{}
		for _, f := range faults {
			if f.State == FaultAcknowledged && len(f.Steps) >= 1 { // a write done but not yet printed is done again
				steps[f.ID] = true
			}
		}
		lines, err := db.AuditLog("kill-test", 100000)
		if err != nil {
			t.Fatal(err)
		}
		audited := map[string]bool{}
		for _, l := range lines {
			audited[l.Target] = true
		}
		for n := 0; n <= acked; n++ {
			if id := fmt.Sprintf("CAM-%d/battery-worn", n); !steps[id] {
				t.Errorf("round %d: fault %s acknowledged before the kill is not acknowledged after it", round, id)
			}
			if !audited[strconv.Itoa(n)] {
				t.Errorf("round %d: audit line %d written before the kill is missing", round, n)
			}
		}
		t.Logf("round %d: killed after %d acknowledged writes of each kind; all there", round, acked+1)
		db.Close()
		next = acked + 1
	}
}
