package camlink

import (
	"bytes"
	"testing"
)

func frames(t testing.TB, fs ...Frame) []byte {
	var b []byte
	var err error
	for _, f := range fs {
		if b, err = AppendFrame(b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestDecoderSurvivesGarbage(t *testing.T) {
	a := Frame{Code: CodeIdentify.Reply(), Seq: 7, Payload: []byte(`{"serial":"A1"}`)}
	b := Frame{Code: CodeBattery.Reply(), Seq: 8, Payload: []byte(`{}`)}
	good := frames(t, a)
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-6] ^= 0xff // payload byte flipped: CRC fails

	tests := []struct {
		name   string
		stream []byte
		want   []Frame
	}{
		{"clean", frames(t, a, b), []Frame{a, b}},
		{"leading noise", append([]byte("\x00\xffhello\xd0"), frames(t, a)...), []Frame{a}},
		{"corrupt then good", append(corrupt, frames(t, b)...), []Frame{b}},
		{"lying length", append([]byte{0xD0, 0xCC, 1, 0x81, 1, 0x3f, 0xff}, frames(t, b)...), nil}, // held back until resync
		{"wrong version", append([]byte{0xD0, 0xCC, 9, 0x81, 1, 0, 0}, frames(t, b)...), []Frame{b}},
		{"truncated", good[:len(good)-1], nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			// Feed byte by byte: partial frames must wait, not break.
			for _, c := range tc.stream {
				d.Write([]byte{c})
			}
			var got []Frame
			for {
				f, ok := d.Next()
				if !ok {
					break
				}
				got = append(got, f)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d frames, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i].Code != tc.want[i].Code || got[i].Seq != tc.want[i].Seq || !bytes.Equal(got[i].Payload, tc.want[i].Payload) {
					t.Errorf("frame %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestResyncReleasesFrameBehindLyingLength(t *testing.T) {
	b := Frame{Code: CodeBattery.Reply(), Seq: 8, Payload: []byte(`{}`)}
	var d Decoder
	d.Write(append([]byte{0xD0, 0xCC, 1, 0x81, 1, 0x3f, 0xff}, frames(t, b)...))
	if _, ok := d.Next(); ok {
		t.Fatal("frame came out before resync")
	}
	d.Resync()
	f, ok := d.Next()
	if !ok || f.Seq != 8 {
		t.Fatalf("after resync got %+v, %v", f, ok)
	}
	if d.Discarded == 0 || len(d.Garbage()) == 0 {
		t.Error("discarded bytes not kept for diagnosis")
	}
}

func TestAppendFrameRejectsOversize(t *testing.T) {
	if _, err := AppendFrame(nil, Frame{Payload: make([]byte, MaxPayload+1)}); err == nil {
		t.Fatal("oversize payload encoded")
	}
}

func FuzzDecoder(f *testing.F) {
	f.Add(frames(f, Frame{Code: CodeList.Reply(), Seq: 1, Payload: []byte(`{"total":0}`)}))
	f.Add([]byte{0xD0, 0xCC, 1, 0x81, 1, 0x3f, 0xff})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		d.Write(data)
		for i := 0; i < len(data)+1; i++ {
			fr, ok := d.Next()
			if !ok {
				d.Resync()
				continue
			}
			// Whatever decodes must re-encode to the same frame.
			enc, err := AppendFrame(nil, fr)
			if err != nil {
				t.Fatal(err)
			}
			var d2 Decoder
			d2.Write(enc)
			g, ok := d2.Next()
			if !ok || g.Code != fr.Code || g.Seq != fr.Seq || !bytes.Equal(g.Payload, fr.Payload) {
				t.Fatalf("round trip changed %+v", fr)
			}
		}
	})
}
