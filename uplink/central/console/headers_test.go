package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"dock/uplink/central/fleet"
)

// Every answer keeps the page to itself (no framing, no sniffing, no caching, no referrer
// elsewhere); served over TLS it also tells the browser to come back only over TLS (HSTS),
// so a network in between cannot strip it to plain HTTP for the next visit.
func TestSecurityHeaders(t *testing.T) {
	for _, secure := range []bool{false, true} {
		db, err := fleet.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		s, err := New(ctx, Options{DB: db, Docks: &recordingDispatcher{}, Log: discardLog(), Secure: secure})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
		cancel()
		db.Close()
		h := rec.Result().Header
		for k, want := range map[string]string{"Content-Security-Policy": "frame-ancestors 'none'", "X-Content-Type-Options": "nosniff",
			"Cache-Control": "no-store", "Referrer-Policy": "same-origin"} {
			if !strings.Contains(h.Get(k), want) {
				t.Errorf("secure %v: %s %q, want %q", secure, k, h.Get(k), want)
			}
		}
		if hsts := h.Get("Strict-Transport-Security"); secure != strings.Contains(hsts, "max-age=31536000") {
			t.Errorf("secure %v: Strict-Transport-Security %q", secure, hsts)
		}
	}
}
