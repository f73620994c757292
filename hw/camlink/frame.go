// Package camlink owns the camera serial protocol v1 (PROTOCOL.md): framing, messages, and
// the request/response link the dock drives. It never interprets readings; health does.
package camlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Frame layout (all integers big-endian):
//
//	magic 0xD0 0xCC | version 1 | code 1 | seq 1 | length 2 | payload length | crc32 4
//
// The CRC (IEEE) covers version through payload.
const (
	magic0     = 0xD0
	magic1     = 0xCC
	Version    = 1
	headerLen  = 7
	trailerLen = 4
	// MaxPayload bounds a frame's payload; a longer length field is garbage.
	MaxPayload = 16 << 10
)

// Frame is one decoded protocol unit.
type Frame struct {
	Code    Code
	Seq     uint8
	Payload []byte
}

// ErrPayloadTooLarge is returned when encoding a payload over MaxPayload.
var ErrPayloadTooLarge = errors.New("camlink: payload too large")

// AppendFrame encodes f onto dst.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return dst, fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(f.Payload))
	}
	start := len(dst)
	dst = append(dst, magic0, magic1, Version, byte(f.Code), f.Seq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(f.Payload)))
	dst = append(dst, f.Payload...)
	sum := crc32.ChecksumIEEE(dst[start+2:])
	return binary.BigEndian.AppendUint32(dst, sum), nil
}

// Decoder turns a byte stream that may hold garbage, partial and corrupt frames into
// frames. Bytes that are not part of a valid frame are counted and kept (the last
// few hundred) for diagnosis.
type Decoder struct {
	buf       []byte
	Discarded int    // bytes dropped as garbage since the decoder was made
	garbage   []byte // the most recent discarded bytes
}

// keptGarbage is how many discarded bytes a Decoder remembers.
const keptGarbage = 256

// Write feeds received bytes.
func (d *Decoder) Write(p []byte) { d.buf = append(d.buf, p...) }

// Garbage returns the most recent discarded bytes.
func (d *Decoder) Garbage() []byte { return append([]byte(nil), d.garbage...) }

func (d *Decoder) discard(n int) {
	d.Discarded += n
	d.garbage = append(d.garbage, d.buf[:n]...)
	if len(d.garbage) > keptGarbage {
		d.garbage = d.garbage[len(d.garbage)-keptGarbage:]
	}
	d.buf = d.buf[n:]
}

// Next returns the next complete valid frame, or ok=false when more bytes are needed.
func (d *Decoder) Next() (f Frame, ok bool) {
	for {
		// Find the magic.
		i := 0
		for i < len(d.buf) && !(d.buf[i] == magic0 && (i+1 == len(d.buf) || d.buf[i+1] == magic1)) {
			i++
		}
		if i > 0 {
			d.discard(i)
		}
		if len(d.buf) < headerLen {
			return Frame{}, false
		}
		n := int(binary.BigEndian.Uint16(d.buf[5:7]))
		if d.buf[2] != Version || n > MaxPayload {
			d.discard(1)
			continue
		}
		total := headerLen + n + trailerLen
		if len(d.buf) < total {
			return Frame{}, false
		}
		want := binary.BigEndian.Uint32(d.buf[headerLen+n : total])
		if crc32.ChecksumIEEE(d.buf[2:headerLen+n]) != want {
			d.discard(1)
			continue
		}
		f = Frame{Code: Code(d.buf[3]), Seq: d.buf[4], Payload: append([]byte(nil), d.buf[headerLen:headerLen+n]...)}
		d.buf = d.buf[total:]
		if len(d.buf) == 0 {
			d.buf = nil
		}
		return f, true
	}
}

// Resync drops the first pending byte so that a frame header whose length field was
// garbage stops holding back the frames behind it. Call it when a reply is overdue.
func (d *Decoder) Resync() {
	if len(d.buf) > 0 {
		d.discard(1)
	}
}
