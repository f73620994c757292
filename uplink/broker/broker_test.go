package broker

import (
	"io"
	"log/slog"
	"testing"
)

// The embedded broker admits anyone, so it listens on loopback only.
func TestStartListensOnLoopbackOnly(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"[::1]:0", true},
		{":0", false},
		{"0.0.0.0:0", false},
		{"[::]:0", false},
		{"10.0.0.5:1883", false},
		{"broker.example:1883", false},
		{"127.0.0.1", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			b, err := Start(tc.addr, quiet)
			if b != nil {
				defer b.Close()
			}
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("listening on %s", b.URL())
			}
		})
	}
}
