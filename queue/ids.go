package queue

import (
	"crypto/sha256"
	"dock/queue/record"
	"encoding/binary"
	"fmt"
	"time"
)

// validID accepts ids safe as file names and keys (record.CheckID).
func validID(id string) bool { return record.CheckID(id) == nil }

// RecordingID is the dock-wide id of a camera file, as the camera's listing describes it:
// device serial, name (a path on the camera's storage), start and size. The readable part
// (serial and name, characters unsafe in a file name replaced, cut short) is for people;
// uniqueness comes from the suffix, a hash over all four fields each length-prefixed, so
// no two files that differ in any field share an id however their names are spelled
// (camera "CAMA" with "X_Y.mp4" and camera "CAMA_X" with "Y.mp4" do not). Two files that
// agree on all four but not in their bytes get one id: the second is filed under
// VariantID once its bytes are read.
func RecordingID(device, name string, start time.Time, size int64) string {
	h := sha256.New()
	var n [8]byte
	for _, field := range []string{device, name} {
		binary.BigEndian.PutUint64(n[:], uint64(len(field)))
		h.Write(n[:])
		h.Write([]byte(field))
	}
	binary.BigEndian.PutUint64(n[:], uint64(start.Unix()))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(start.Nanosecond()))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(size))
	h.Write(n[:])
	readable := []byte(device + "_" + name)
	for i, c := range readable {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			readable[i] = '-'
		}
	}
	if readable[0] == '.' {
		readable[0] = '-'
	}
	return fmt.Sprintf("%s-%x", readable[:min(len(readable), maxReadableID)], h.Sum(nil)[:12])
}

// maxReadableID bounds an id's readable part: with the 25-byte hash suffix and a variant's
// 17 more it stays within validID's 200 bytes.
const maxReadableID = 150

// VariantID is the id of a camera file whose RecordingID is already taken by a recording
// with other bytes: base with the first 64 bits of the file's SHA-256 appended, so the
// same bytes always find the same variant.
func VariantID(base, sha256hex string) string {
	return base + "-" + sha256hex[:min(len(sha256hex), 16)]
}
