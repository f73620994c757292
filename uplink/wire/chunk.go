package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Chunk is one piece of a recording: "DCK1" | uint16 id length | id | uint64 offset |
// uint32 CRC32C | data. The CRC covers id, offset and data, so a damaged header cannot
// put good bytes in the wrong place.
type Chunk struct {
	Recording string
	Offset    int64
	Data      []byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const chunkMagic = "DCK1"

// AppendChunk encodes c onto dst.
func AppendChunk(dst []byte, c Chunk) []byte {
	dst = append(dst, chunkMagic...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(c.Recording)))
	dst = append(dst, c.Recording...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Offset))
	dst = binary.BigEndian.AppendUint32(dst, chunkCRC(c))
	return append(dst, c.Data...)
}

// FrameChunk lays out the payload of a chunk of n bytes at off of a recording, leaving
// its data to the caller: data aliases frame, so the bytes are read straight into the
// payload; SealChunk then sets the CRC. It saves a copy of every chunk.
func FrameChunk(recording string, off int64, n int) (frame, data []byte) {
	head := len(chunkMagic) + 2 + len(recording) + 8 + 4
	frame = make([]byte, head, head+n)
	copy(frame, chunkMagic)
	binary.BigEndian.PutUint16(frame[4:], uint16(len(recording)))
	copy(frame[6:], recording)
	binary.BigEndian.PutUint64(frame[6+len(recording):], uint64(off))
	frame = frame[:head+n]
	return frame, frame[head:]
}

// SealChunk sets the CRC of a payload laid out by FrameChunk once its data is filled in.
func SealChunk(frame []byte) {
	n := int(binary.BigEndian.Uint16(frame[4:6]))
	c := Chunk{Recording: string(frame[6 : 6+n]), Offset: int64(binary.BigEndian.Uint64(frame[6+n:])), Data: frame[6+n+12:]}
	binary.BigEndian.PutUint32(frame[6+n+8:], chunkCRC(c))
}

func chunkCRC(c Chunk) uint32 {
	var off [8]byte
	binary.BigEndian.PutUint64(off[:], uint64(c.Offset))
	crc := crc32.Update(0, castagnoli, []byte(c.Recording))
	crc = crc32.Update(crc, castagnoli, off[:])
	return crc32.Update(crc, castagnoli, c.Data)
}

// ErrBadChunk means a chunk payload is malformed or its CRC does not match.
var ErrBadChunk = errors.New("wire: bad chunk")

// ParseChunk decodes a chunk payload; Data aliases b.
func ParseChunk(b []byte) (Chunk, error) {
	if len(b) < 6 || string(b[:4]) != chunkMagic {
		return Chunk{}, fmt.Errorf("%w: no header", ErrBadChunk)
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n == 0 || len(b) < 6+n+12 {
		return Chunk{}, fmt.Errorf("%w: truncated", ErrBadChunk)
	}
	c := Chunk{Recording: string(b[6 : 6+n])}
	off := binary.BigEndian.Uint64(b[6+n:])
	if off > 1<<50 {
		return Chunk{}, fmt.Errorf("%w: offset %d", ErrBadChunk, off)
	}
	c.Offset = int64(off)
	sum := binary.BigEndian.Uint32(b[6+n+8:])
	c.Data = b[6+n+12:]
	if chunkCRC(c) != sum {
		return Chunk{}, fmt.Errorf("%w: crc32c mismatch at %s+%d", ErrBadChunk, c.Recording, c.Offset)
	}
	return c, nil
}
