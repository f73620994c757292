package central

import (
	"fmt"
	"hash/fnv"
	"math"
	"testing"

	"dock/uplink/wire"
)

// Every dock's messages go to one of the workers, on 32-bit ARM too, where int is 32 bits
// and half of all FNV hashes do not fit in it (issue #15: index out of range). Run it with
// GOARCH=386 or GOARCH=arm to test the 32-bit case.
func TestShardOfStaysInRange(t *testing.T) {
	high := 0
	for i := 0; i < 1000; i++ {
		dock := fmt.Sprintf("dock-%d", i)
		h := fnv.New32a()
		h.Write([]byte(dock))
		if h.Sum32() >= 1<<31 {
			high++
		}
		for _, n := range []int{1, 3, 4, 7, 64} {
			if got := shardOf(dock, n); got < 0 || got >= n {
				t.Fatalf("shardOf(%q, %d) = %d, want 0..%d", dock, n, got, n-1)
			}
		}
	}
	if high == 0 {
		t.Fatal("no dock id hashes past 2^31: the test proves nothing")
	}
	// The same dock always lands on the same worker: its messages stay in order.
	if a, b := shardOf("dock-7", 4), shardOf("dock-7", 4); a != b {
		t.Fatalf("dock-7 on workers %d and %d", a, b)
	}
}

// A chunk's offset comes from the dock as a uint64 and is read as an int64: whatever it is,
// a chunk outside the announced recording is refused, and one whose end wraps past the
// largest int64 is not taken for a repeat.
func TestChunkOutsideTheRecordingIsRefused(t *testing.T) {
	const size = 4096
	data, sum := footage(size, 9)
	fs := FileStore{Dir: t.TempDir()}
	meta := wire.RecordingMeta{ID: "CAM-9_VID_0009.mp4", Device: "CAM-9"}
	if _, err := fs.Begin("dock-1", "t1", meta, size, sum); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		off  int64
		n    int
	}{
		{"negative offset", -1, 100},
		{"past the end", size - 10, 100},
		{"starts at the end", size, 1},
		{"offset wraps", math.MaxInt64 - 10, 100},
		{"largest offset", math.MaxInt64, 1},
		{"smallest offset", math.MinInt64, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if up, err := fs.Write("dock-1", meta.ID, tt.off, data[:tt.n]); err == nil {
				t.Fatalf("chunk %d+%d of a %d-byte recording accepted: %+v", tt.off, tt.n, size, up)
			}
		})
	}
	if up, err := fs.Write("dock-1", meta.ID, 0, data); err != nil || up.Held != size {
		t.Fatalf("the real chunk after the refusals: %+v %v", up, err)
	}
	if s, err := fs.Finish("dock-1", meta.ID, size, sum); err != nil || s.SHA256 != sum {
		t.Fatalf("finish: %+v %v", s, err)
	}
}
