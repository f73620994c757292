package central

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"

	"dock/uplink/wire"
)

// A camera can hold a recording of 0 bytes. The dock sends begin (size 0) and end with no
// chunk between: central files it and answers with the hash of nothing, every time.
func TestZeroByteRecordingIsFiled(t *testing.T) {
	empty := sha256.Sum256(nil)
	sum := hex.EncodeToString(empty[:])
	tests := []struct {
		name string
		// begins is how many times the dock announces the recording before its end.
		begins int
	}{
		{"begin then end", 1},
		{"begin repeated then end", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := FileStore{Dir: t.TempDir()}
			meta := wire.RecordingMeta{ID: "CAM-0_VID_0000.mp4", Device: "CAM-0"}
			for i := 0; i < tt.begins; i++ {
				if up, err := fs.Begin("dock-1", "t1", meta, 0, sum); err != nil || up.Held != 0 || up.Size != 0 {
					t.Fatalf("begin: %+v %v", up, err)
				}
			}
			s, err := fs.Finish("dock-1", meta.ID, 0, sum)
			if err != nil {
				t.Fatalf("finish of a 0-byte recording: %v", err)
			}
			if s.Size != 0 || s.SHA256 != sum {
				t.Fatalf("receipt %d bytes sha256 %s, want 0 bytes %s", s.Size, s.SHA256, sum)
			}
			if fi, err := os.Stat(s.Path); err != nil || fi.Size() != 0 || fi.Mode().Perm()&0o222 != 0 {
				t.Fatalf("filed file: %v %v", fi, err)
			}
			again, err := fs.Finish("dock-1", meta.ID, 0, sum)
			if err != nil || again.SHA256 != sum || again.Size != 0 || !again.Stored.Equal(s.Stored) {
				t.Fatalf("repeated end: %+v %v, want the same receipt %+v", again, err, s)
			}
		})
	}
}
