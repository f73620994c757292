package udev

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every bay's storage is mounted only when it is FAT or exFAT, with that type forced, and
// read-only with nosymfollow, nodev, nosuid, noexec: a hostile card gets no device nodes,
// no set-uid or runnable files, no links out, and nothing written back.
func TestBayMountsAreReadOnlyFATOnly(t *testing.T) {
	b, err := os.ReadFile("70-dock-bays.rules")
	if err != nil {
		t.Fatal(err)
	}
	opts := regexp.MustCompile(`systemd-mount .*-o ([^ ]+)`)
	mounts := 0
	for n, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") || !strings.Contains(line, "systemd-mount") {
			continue
		}
		mounts++
		if !strings.Contains(line, `ENV{ID_FS_TYPE}=="vfat|exfat"`) {
			t.Errorf("line %d mounts storage of any filesystem type: %s", n+1, line)
		}
		if !strings.Contains(line, "--type=$env{ID_FS_TYPE}") {
			t.Errorf("line %d lets mount probe the type: %s", n+1, line)
		}
		m := opts.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %d: no mount options: %s", n+1, line)
			continue
		}
		have := map[string]bool{}
		for _, o := range strings.Split(m[1], ",") {
			have[o] = true
		}
		for _, want := range []string{"ro", "nosymfollow", "nodev", "nosuid", "noexec"} {
			if !have[want] {
				t.Errorf("line %d: mount options %s lack %s", n+1, m[1], want)
			}
		}
		if have["rw"] {
			t.Errorf("line %d: mounts read-write", n+1)
		}
	}
	if mounts == 0 {
		t.Fatal("no bay mounts in the rules")
	}
}

// The shipped rules are the CM4 carrier's topology, as data in topology.go: a bay's port
// changed in one and not the other fails here (the emulated board's rules, Rules(QemuVirt),
// come from the same code, so what it proves holds for the shipped file).
func TestShippedRulesAreCM4Dock4(t *testing.T) {
	b, err := os.ReadFile("70-dock-bays.rules")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), Rules(CM4Dock4); got != want {
		t.Errorf("70-dock-bays.rules differ from Rules(CM4Dock4):\n--- shipped\n%s\n--- generated\n%s", got, want)
	}
	for _, top := range []Topology{CM4Dock4, QemuVirt} {
		r := Rules(top)
		for i, bay := range top.Bays {
			if !strings.Contains(r, `KERNELS=="`+bay.Serial+`", SYMLINK+="dock/bay`+strconv.Itoa(i)+`"`) || !strings.Contains(r, `KERNELS=="`+bay.Storage+`", ACTION=="add"`) {
				t.Errorf("%s bay %d: rules lack its serial %s or storage %s", top.Name, i, bay.Serial, bay.Storage)
			}
		}
	}
}
