package central

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"

	"dock/uplink/wire"
)

func footage(n int, seed uint64) ([]byte, string) {
	rng := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// Chunks of one upload arrive in any order, repeated, split between instances writing at
// once: central stores the recording once, with the right hash, and reports the contiguous
// offset correctly all along.
func TestUploadSharedBetweenInstances(t *testing.T) {
	const size, chunk = 1<<20 + 12345, 32 << 10
	data, sum := footage(size, 1)
	var offs []int64
	for o := int64(0); o < size; o += chunk {
		offs = append(offs, o)
	}
	piece := func(o int64) []byte { return data[o:min(o+chunk, size)] }
	tests := []struct {
		name      string
		order     func() []int64
		instances int
	}{
		{"in order", func() []int64 { return offs }, 1},
		{"reversed", func() []int64 { r := append([]int64(nil), offs...); slices.Reverse(r); return r }, 1},
		{"shuffled with repeats", func() []int64 {
			r := append(append([]int64(nil), offs...), offs[:7]...)
			rand.New(rand.NewPCG(2, 0)).Shuffle(len(r), func(i, j int) { r[i], r[j] = r[j], r[i] })
			return r
		}, 1},
		{"four instances at once", func() []int64 { return offs }, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			meta := wire.RecordingMeta{ID: "CAM-1_VID_0001.mp4", Device: "CAM-1"}
			if up, err := (FileStore{Dir: dir}).Begin("dock-1", "t1", meta, size, sum); err != nil || up.Held != 0 {
				t.Fatalf("begin: %+v %v", up, err)
			}
			order := tt.order()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var last int64
			for i := range tt.instances {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fs := FileStore{Dir: dir} // an instance of its own, locking through its own files
					for j := i; j < len(order); j += tt.instances {
						up, err := fs.Write("dock-1", meta.ID, order[j], piece(order[j]))
						if err != nil {
							t.Error(err)
							return
						}
						if up.Held > size || up.Held%chunk != 0 && up.Held != size {
							t.Errorf("held %d: not a chunk boundary", up.Held)
						}
						mu.Lock()
						last = max(last, up.Held)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if last != size {
				t.Fatalf("held %d of %d after every chunk", last, size)
			}
			s, err := (FileStore{Dir: dir}).Finish("dock-1", meta.ID, size, sum)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(s.Path)
			if err != nil {
				t.Fatal(err)
			}
			if h := sha256.Sum256(got); hex.EncodeToString(h[:]) != sum || s.SHA256 != sum || s.Meta.Device != "CAM-1" {
				t.Fatalf("stored %d bytes, hash %s, meta %+v; want %s", len(got), s.SHA256, s.Meta, sum)
			}
			// A late repeat of a chunk after the receipt is answered as complete.
			if up, err := (FileStore{Dir: dir}).Write("dock-1", meta.ID, 0, piece(0)); err != nil || up.Held != size {
				t.Fatalf("late chunk: %+v %v", up, err)
			}
			if again, err := (FileStore{Dir: dir}).Finish("dock-1", meta.ID, size, sum); err != nil || again.Stored != s.Stored {
				t.Fatalf("second finish: %+v %v", again, err)
			}
		})
	}
}

func TestUploadRefusals(t *testing.T) {
	const size = 64 << 10
	data, sum := footage(size, 3)
	meta := wire.RecordingMeta{ID: "CAM-2_VID_0002.mp4", Device: "CAM-2"}
	fs := FileStore{Dir: t.TempDir()}
	if _, err := fs.Write("dock-1", meta.ID, 0, data); !errors.Is(err, ErrNotBegun) {
		t.Fatalf("chunk before begin: %v, want ErrNotBegun", err)
	}
	if _, err := fs.Begin("dock-1", "t1", meta, size, sum); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Write("dock-1", meta.ID, 4096, data); err == nil {
		t.Fatal("chunk past the announced size accepted")
	}
	if _, err := fs.Write("dock-1", meta.ID, 0, data[:size/2]); err != nil {
		t.Fatal(err)
	}
	var inc *IncompleteError
	if _, err := fs.Finish("dock-1", meta.ID, size, sum); !errors.As(err, &inc) || inc.Held != size/2 {
		t.Fatalf("finish of half: %v", err)
	}
	// A begin again (the dock restarted) resumes where central stopped.
	if up, err := fs.Begin("dock-1", "t2", meta, size, sum); err != nil || up.Held != size/2 {
		t.Fatalf("resume: %+v %v", up, err)
	}
	bad := append([]byte(nil), data[size/2:]...)
	bad[100] ^= 1
	if _, err := fs.Write("dock-1", meta.ID, size/2, bad); err != nil {
		t.Fatal(err)
	}
	var mis *MismatchError
	if _, err := fs.Finish("dock-1", meta.ID, size, sum); !errors.As(err, &mis) || mis.SHA256 == sum {
		t.Fatalf("finish of altered bytes: %v, want a mismatch", err)
	}
	if _, ok, _ := fs.Lookup(meta.ID); ok {
		t.Fatal("an altered recording was stored")
	}
	if _, ok, _ := fs.Held("dock-1", meta.ID); ok {
		t.Fatal("an altered upload was kept")
	}
	if _, err := fs.Begin("dock-1", "t3", wire.RecordingMeta{ID: "../x"}, 1, sum); err == nil {
		t.Fatal("unsafe recording id accepted")
	}
}
