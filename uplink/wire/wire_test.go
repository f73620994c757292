package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestChunkRoundTripAndCorruption(t *testing.T) {
	c := Chunk{Recording: "CAM-1_VID_0001.mp4", Offset: 1 << 33, Data: []byte("footage bytes")}
	b := AppendChunk(nil, c)
	got, err := ParseChunk(b)
	if err != nil || got.Recording != c.Recording || got.Offset != c.Offset || !bytes.Equal(got.Data, c.Data) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := range b {
		bad := append([]byte(nil), b...)
		bad[i] ^= 0x40
		if g, err := ParseChunk(bad); err == nil && (g.Recording != c.Recording || g.Offset != c.Offset || !bytes.Equal(g.Data, c.Data)) {
			t.Fatalf("flipping byte %d gave a different valid chunk %+v", i, g)
		}
	}
	if _, err := ParseChunk(b[:10]); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("truncated chunk: %v", err)
	}
}

func TestSplitTopic(t *testing.T) {
	tests := []struct {
		root, topic, dock, leaf string
		ok                      bool
	}{
		{DockRoot, "dock/v1/d1/transfer/chunk", "d1", "transfer/chunk", true},
		{CentralRoot, "central/v1/d2/config", "d2", "config", true},
		{DockRoot, "dock/v1/d1", "", "", false},
		{DockRoot, "central/v1/d1/config", "", "", false},
		{DockRoot, "dock/v1//status", "", "", false},
	}
	for _, tc := range tests {
		d, l, ok := SplitTopic(tc.root, tc.topic)
		if d != tc.dock || l != tc.leaf || ok != tc.ok {
			t.Errorf("SplitTopic(%s) = %q %q %v", tc.topic, d, l, ok)
		}
	}
}

func TestGrantCheck(t *testing.T) {
	good := GrantMsg{ID: "g", ChunkSize: 256 << 10, Window: 8}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for _, g := range []GrantMsg{
		{ChunkSize: 256 << 10, Window: 8},
		{ID: "g", ChunkSize: 10, Window: 8},
		{ID: "g", ChunkSize: 256 << 10, Window: 0},
		{ID: "g", ChunkSize: 256 << 10, Window: 1000},
		{ID: "g", ChunkSize: 256 << 10, Window: 8, RateBytes: -1},
	} {
		if g.Check() == nil {
			t.Errorf("grant %+v accepted", g)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var c ConfigMsg
	if err := json.Unmarshal([]byte(`{"version":3,"team":"t","alert_every":"90s"}`), &c); err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.AlertEvery) != 90*time.Second {
		t.Fatalf("alert_every = %v", time.Duration(c.AlertEvery))
	}
	if err := json.Unmarshal([]byte(`{"alert_every":"soon"}`), &c); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func FuzzParseChunk(f *testing.F) {
	f.Add(AppendChunk(nil, Chunk{Recording: "r", Offset: 5, Data: []byte("x")}))
	f.Add([]byte("DCK1\x00\x01r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChunk(b)
		if err != nil {
			return
		}
		again, err := ParseChunk(AppendChunk(nil, c))
		if err != nil || again.Recording != c.Recording || again.Offset != c.Offset || !bytes.Equal(again.Data, c.Data) {
			t.Fatalf("re-encoding changed %+v", c)
		}
	})
}

func TestConfigSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	c := ConfigMsg{Version: 4, Team: "North", Officers: map[string]string{"CAM-1": "OF-1", "CAM-2": "OF-2"}}
	if err := c.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("unsigned config: %v", err)
	}
	c.Sign(priv)
	if err := c.Verify(pub); err != nil {
		t.Fatalf("signed config: %v", err)
	}
	// Survives the trip through JSON.
	b, _ := json.Marshal(c)
	var back ConfigMsg
	_ = json.Unmarshal(b, &back)
	if err := back.Verify(pub); err != nil {
		t.Fatalf("after JSON: %v", err)
	}
	tampered := back
	tampered.Officers = map[string]string{"CAM-1": "OF-666", "CAM-2": "OF-2"}
	if err := tampered.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatal("a changed config kept its signature")
	}
	forged := c
	forged.Sign(other)
	if err := forged.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Fatal("a config signed by another key passed")
	}
}

// A payload framed in place parses to the same chunk as one appended.
func TestFrameChunkMatchesAppendChunk(t *testing.T) {
	c := Chunk{Recording: "CAM-1_VID_0001.mp4", Offset: 3 << 20, Data: []byte("evidence bytes")}
	frame, data := FrameChunk(c.Recording, c.Offset, len(c.Data))
	copy(data, c.Data)
	SealChunk(frame)
	if !bytes.Equal(frame, AppendChunk(nil, c)) {
		t.Fatalf("framed %x, appended %x", frame, AppendChunk(nil, c))
	}
	got, err := ParseChunk(frame)
	if err != nil || got.Recording != c.Recording || got.Offset != c.Offset || !bytes.Equal(got.Data, c.Data) {
		t.Fatalf("parse: %+v %v", got, err)
	}
}
