package mqttconn

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// The paho fork (uplink/tempfork/paho.mqtt.golang, which go.mod puts in paho's place) is
// upstream v1.5.1 plus its dock.patch and nothing else: a change made to the fork without
// recording it in the patch, or a patch the fork no longer matches, fails here.
func TestPahoForkIsUpstreamPlusItsPatch(t *testing.T) {
	const fork = "../tempfork/paho.mqtt.golang"
	for _, tool := range []string{"bash", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here: the fork cannot be compared with upstream (%v)", tool, err)
		}
	}
	want := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(fork, "rebase.sh"), want)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		t.Skipf("upstream paho cannot be had here: %s", out)
	}
	const rebase = "bash uplink/tempfork/paho.mqtt.golang/rebase.sh"
	const record = "bash uplink/tempfork/paho.mqtt.golang/rebase.sh -record"
	if err != nil {
		t.Fatalf("upstream v1.5.1 + dock.patch: %v\n%s\nthe patch no longer applies to upstream: fix dock.patch, or record the fork as it is with\n\t%s", err, out, record)
	}
	own := map[string]bool{"README.md": true, "dock.patch": true, "rebase.sh": true}
	have, err := tree(fork, own)
	if err != nil {
		t.Fatal(err)
	}
	expected, err := tree(want, nil)
	if err != nil {
		t.Fatal(err)
	}
	var drift []string
	for name, b := range have {
		if e, ok := expected[name]; !ok {
			drift = append(drift, name+": only in the fork")
		} else if !bytes.Equal(b, e) {
			drift = append(drift, name+": differs from upstream v1.5.1 + dock.patch")
		}
	}
	for name := range expected {
		if _, ok := have[name]; !ok {
			drift = append(drift, name+": missing from the fork")
		}
	}
	sort.Strings(drift)
	for _, d := range drift {
		t.Error(d)
	}
	if len(drift) > 0 {
		t.Logf("the fork is not upstream paho v1.5.1 + dock.patch. From the repository's top:\n"+
			"  to make it so again (drop the unrecorded change):\n\t%s\n"+
			"  or, if the change is meant, record it in the patch (and say why in the fork's README.md):\n\t%s", rebase, record)
	}
}

// tree reads every regular file under dir, by slash path, except those named in skip.
func tree(dir string, skip map[string]bool) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip[rel] {
			return nil
		}
		b, err := os.ReadFile(path)
		files[rel] = b
		return err
	})
	return files, err
}
