package central

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dock/uplink/wire"
)

// Ids central files under become file names and a line of each .sha256 file ("hash  id",
// for sha256sum -c): an id with a newline, a space or a control byte would break that line,
// so central takes only what a dock can name (queue.validID): [A-Za-z0-9._-], at most 200
// bytes, not starting with '.'.
func TestIDsOutsideTheDocksAlphabetAreRefused(t *testing.T) {
	good := []string{"CAM-1_VID_0001.mp4", "a", "dock-1", "x.y_z-9", strings.Repeat("a", 200)}
	bad := []string{
		"", ".", "..", ".hidden", "a/b", `a\b`, "a\x00b",
		"CAM-1 VID_0001.mp4",               // a space
		"CAM-1_VID.mp4\nfffff  other",      // a newline: a second line in the .sha256 file
		"a\rb", "a\tb", "a\x1bb", "a\x7fb", // control bytes
		"VID_0001.mp4\u00a0", "vidéo.mp4", "a:b", "a*b", "a\"b", // outside the alphabet
		strings.Repeat("a", 201),
	}
	for _, s := range good {
		if err := safe(s); err != nil {
			t.Errorf("safe(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range bad {
		if safe(s) == nil {
			t.Errorf("safe(%q) accepted", s)
		}
	}

	// Through the store: a begin with such an id, or such a device, files nothing.
	dir := t.TempDir()
	st := FileStore{Dir: dir}
	data, sum := footage(100, 41)
	for _, meta := range []wire.RecordingMeta{
		{ID: "CAM-1_VID_0001.mp4\nfffff  CAM-1_VID_0002.mp4", Device: "CAM-1"},
		{ID: "CAM-1_VID 0003.mp4", Device: "CAM-1"},
		{ID: "CAM-1_VID_0004.mp4", Device: "CAM 1"},
		{ID: "CAM-1_VID_0005.mp4", Device: "CAM-1\x01"},
	} {
		if _, err := st.Begin("dock-1", "t1", meta, int64(len(data)), sum); err == nil {
			_, _ = st.Write("dock-1", meta.ID, 0, data)
			s, ferr := st.Finish("dock-1", meta.ID, int64(len(data)), sum)
			t.Errorf("begin of id %q device %q accepted (finish: %+v %v)", meta.ID, meta.Device, s, ferr)
		}
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}
