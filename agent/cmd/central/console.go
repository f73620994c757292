package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"dock/uplink/central"
	"dock/uplink/central/console"
	"dock/uplink/central/fleet"
)

// addUser creates a console user in the fleet database under dir and prints their
// one-time password (there is no default password: the first admin is made this way).
func addUser(dir, name, role string) error {
	db, err := fleet.Open(dir)
	if err != nil {
		return err
	}
	defer db.Close()
	pw, err := db.AddUser(name, fleet.Role(role), "central -add-user")
	if err != nil {
		return err
	}
	fmt.Printf("user %s (%s) created; one-time password, shown only now:\n%s\n", name, role, pw)
	return nil
}

// serveConsole serves the console on addr until ctx ends: over TLS when cert and key
// are given (cookies then Secure), else plain HTTP, which is for loopback only.
func serveConsole(ctx context.Context, addr, cert, key string, plainOK bool, db *fleet.DB, r *central.Receiver, store central.FileStore, log *slog.Logger) error {
	if (cert == "") != (key == "") {
		return errors.New("-console-cert and -console-key go together")
	}
	if cert == "" {
		if err := plainHTTPAllowed(addr, plainOK); err != nil {
			return err
		}
	}
	footage := func(dock, id string) (string, error) {
		s, ok, err := store.Filed(dock, id)
		if err == nil && !ok {
			err = fmt.Errorf("recording %s of %s is not filed", id, dock)
		}
		return s.Path, err
	}
	srv, err := console.New(ctx, console.Options{DB: db, Docks: r, Footage: footage, Log: log.With("component", "console"), Secure: cert != ""})
	if err != nil {
		return err
	}
	hs := &http.Server{Addr: addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if cert == "" {
		log.Warn("console without TLS: serve it on loopback only, or give -console-cert and -console-key", "addr", addr)
		err = hs.ListenAndServe()
	} else {
		err = hs.ListenAndServeTLS(cert, key)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// plainHTTPAllowed refuses to serve the console without TLS on anything but a loopback
// address (sign-in passwords and session cookies would cross the network in clear),
// unless plainOK (-console-insecure-http: TLS ends at a proxy on the same host, say).
func plainHTTPAllowed(addr string, plainOK bool) error {
	if plainOK {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("console address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("console on %q without TLS: give -console-cert and -console-key, serve it on loopback (127.0.0.1:PORT), or say -console-insecure-http", addr)
}
