package central

import (
	"fmt"
	"testing"

	"dock/uplink/wire"
)

// The cost of storing one chunk of an upload, state included, at the reference chunk size.
func BenchmarkWriteChunk(b *testing.B) {
	for _, chunk := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", chunk>>10), func(b *testing.B) {
			const size = 256 << 20
			data, _ := footage(chunk, 1)
			st := FileStore{Dir: b.TempDir()}
			meta := wire.RecordingMeta{ID: "CAM-B_VID_0001.mp4", Device: "CAM-B"}
			if _, err := st.Begin("dock-1", "t1", meta, size, "x"); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(chunk))
			b.ResetTimer()
			off := int64(0)
			for i := 0; i < b.N; i++ {
				if off+int64(chunk) > size {
					b.StopTimer()
					if _, err := st.Begin("dock-1", "t1", meta, size, fmt.Sprint("x", i)); err != nil {
						b.Fatal(err)
					}
					off = 0
					b.StartTimer()
				}
				if _, err := st.Write("dock-1", meta.ID, off, data); err != nil {
					b.Fatal(err)
				}
				off += int64(chunk)
			}
		})
	}
}

// A whole recording from begin to receipt, the fsyncs before the receipt included.
func BenchmarkUploadAndFinish(b *testing.B) {
	const size, chunk = 64 << 20, 1 << 20
	data, sum := footage(size, 2)
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		st := FileStore{Dir: b.TempDir()}
		meta := wire.RecordingMeta{ID: fmt.Sprintf("CAM-B_VID_%04d.mp4", i), Device: "CAM-B"}
		if _, err := st.Begin("dock-1", "t1", meta, size, sum); err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < size; off += chunk {
			if _, err := st.Write("dock-1", meta.ID, off, data[off:off+chunk]); err != nil {
				b.Fatal(err)
			}
		}
		if s, err := st.Finish("dock-1", meta.ID, size, sum); err != nil || s.SHA256 != sum {
			b.Fatal(s, err)
		}
	}
}
