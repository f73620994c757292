package udev

import (
	"os"
	"regexp"
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
