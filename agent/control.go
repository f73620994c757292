package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"dock/agent/ctlview"
	"dock/health"
	"dock/queue"
)

// The control socket is the maintenance interface at the dock (dockctl): a local Unix
// socket, root-only, never a network port. It shows state and takes acknowledgements;
// it never serves footage.

func (a *Agent) controlHandler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/slots", func(w http.ResponseWriter, r *http.Request) {
		reply(w, a.Telemetry().Slots, nil)
	})
	mux.HandleFunc("GET /v1/faults", func(w http.ResponseWriter, r *http.Request) {
		reply(w, a.Faults(), nil)
	})
	mux.HandleFunc("POST /v1/faults/ack", func(w http.ResponseWriter, r *http.Request) {
		id, by := r.URL.Query().Get("id"), r.URL.Query().Get("by")
		if by == "" {
			by = "dockctl"
		}
		err := a.faultEvent(id, health.EvAck, by)
		reply(w, map[string]string{"acknowledged": id}, err)
	})
	mux.HandleFunc("GET /v1/queue", func(w http.ResponseWriter, r *http.Request) {
		st, err := a.store.Stats()
		if err != nil {
			reply(w, nil, err)
			return
		}
		p, err := a.store.Pending(50)
		reply(w, ctlview.QueueView{Stats: st, Pending: p}, err)
	})
	mux.HandleFunc("GET /v1/ledger/verify", func(w http.ResponseWriter, r *http.Request) {
		// Against the head central acknowledged (the anchor), when there is one: a
		// rewrite up to it is caught even with the chain recomputed.
		anchor, _, err := a.store.Anchor()
		if err != nil {
			reply(w, nil, err)
			return
		}
		n, err := a.store.VerifyAgainst(anchor)
		c := ctlview.LedgerCheck{Entries: n, OK: err == nil, AnchorSeq: anchor.Seq, AnchorHash: anchor.Hash}
		var bad *queue.BadEntry
		if errors.As(err, &bad) {
			c.BadSeq, c.Reason = bad.Seq, bad.Reason
			err = nil
		}
		reply(w, c, err)
	})
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, r *http.Request) {
		reply(w, a.Settings(), nil)
	})
	return mux
}

// serveControl listens on the control socket until ctx ends.
func (a *Agent) serveControl(ctx context.Context, path string) error {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	return serveHTTP(ctx, l, a.controlHandler())
}
