// Package consoletest owns starting the whole central office for tests and demos: an MQTT
// broker, the central receiver feeding the fleet database, the web console, and simulated
// docks running the real agent, plus a signed-in HTTP client. Never in a production binary.
package consoletest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"dock/agent/simrun"
	"dock/uplink/broker"
	"dock/uplink/central"
	"dock/uplink/central/console"
	"dock/uplink/central/fleet"
	"dock/uplink/wire"
)

// Options configure an office.
type Options struct {
	Dir    string // state: central/ (store and fleet.db), dock-N/ per simulated dock
	Broker string // MQTT URL; empty starts the embedded broker on loopback
	Docks  int    // simulated docks, named dock-1, dock-2, … (default 1)
	Slots  int    // bays per dock (default 4)
	Addr   string // the console's listen address (default 127.0.0.1:0)
	Log    *slog.Logger
	// QuietAge: a dock not heard from for longer stands out on the Fleet page.
	QuietAge time.Duration
	// Observe, if set, wraps the fleet's Observer of the receiver (the notifications'
	// notify.Notifier.Observer, say), as the central program does with -notifications.
	Observe func(fleet central.Observer) central.Observer
	// FirstConfig is rolled out to every dock through the console's own rollout before
	// Launch returns (version 1; zero: telemetry and ledger every second, alerts every 5 s).
	FirstConfig wire.ConfigMsg
}

// Env is a running office.
type Env struct {
	URL           string // the console, http://host:port
	Dir           string
	DB            *fleet.DB
	Receiver      *central.Receiver
	Store         central.FileStore
	Docks         []*simrun.Harness // Docks[i] is dock-(i+1)
	Key           ed25519.PrivateKey
	AdminUser     string
	AdminPassword string // one-time, made at Launch

	broker *broker.Broker
	http   *http.Server
	cancel context.CancelFunc
}

// DockName is the id of the i-th simulated dock (from 0).
func DockName(i int) string { return fmt.Sprintf("dock-%d", i+1) }

// Launch starts everything and returns once every dock applied the first config.
func Launch(ctx context.Context, o Options) (e *Env, err error) {
	if o.Docks == 0 {
		o.Docks = 1
	}
	if o.Slots == 0 {
		o.Slots = 4
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.FirstConfig.Team == "" {
		o.FirstConfig = wire.ConfigMsg{Team: "Team-North-3", TelemetryEvery: wire.Duration(time.Second), AlertEvery: wire.Duration(5 * time.Second)}
	}
	e = &Env{Dir: o.Dir, Store: central.FileStore{Dir: filepath.Join(o.Dir, "central")}, AdminUser: "admin"}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	if _, e.Key, err = ed25519.GenerateKey(nil); err != nil {
		return e, err
	}
	if o.Broker == "" {
		if e.broker, err = broker.Start("127.0.0.1:0", o.Log.With("component", "broker")); err != nil {
			return e, err
		}
		o.Broker = e.broker.URL()
	}
	if e.DB, err = fleet.Open(e.Store.Dir); err != nil {
		return e, err
	}
	var observer central.Observer = e.DB
	if o.Observe != nil {
		observer = o.Observe(observer)
	}
	e.Receiver, err = central.Start(ctx, central.Options{Broker: o.Broker, ClientID: "central-console", Store: e.Store,
		SigningKey: e.Key, Observer: observer}, o.Log.With("component", "central"))
	if err != nil {
		return e, err
	}
	srv, err := console.New(runCtx, console.Options{DB: e.DB, Docks: e.Receiver, Log: o.Log.With("component", "console"),
		QuietAge: o.QuietAge, Footage: e.footage})
	if err != nil {
		return e, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return e, err
	}
	e.URL = "http://" + ln.Addr().String()
	e.http = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.http.Serve(ln) }()
	if e.AdminPassword, err = e.DB.AddUser(e.AdminUser, fleet.RoleAdmin, "consoletest"); err != nil {
		return e, err
	}
	var docks []string
	for i := range o.Docks {
		h, err := simrun.Start(ctx, simrun.Options{Dir: filepath.Join(o.Dir, DockName(i)), Slots: o.Slots, Dock: DockName(i),
			Broker: o.Broker, NoCentral: true, CentralKey: e.Key, Log: o.Log.With("dock", DockName(i))})
		if err != nil {
			return e, fmt.Errorf("%s: %w", DockName(i), err)
		}
		e.Docks = append(e.Docks, h)
		docks = append(docks, DockName(i))
	}
	return e, e.firstConfig(ctx, o.FirstConfig, docks)
}

// firstConfig rolls the first config out through the console's rollout (all docks, one
// canary) and waits for every dock to apply it.
func (e *Env) firstConfig(ctx context.Context, c wire.ConfigMsg, docks []string) error {
	v, err := e.DB.NextConfigVersion()
	if err != nil {
		return err
	}
	body, err := jsonOf(c)
	if err != nil {
		return err
	}
	if _, err := e.DB.StartRollout(v, body, docks, 1, "all", "consoletest"); err != nil {
		return err
	}
	return simrun.WaitFor(ctx, "every dock applied the first config", func() bool {
		for _, h := range e.Docks {
			if h.Agent.Settings().Version < v {
				return false
			}
		}
		return true
	})
}

// footage is where central filed a recording, for an approved view.
func (e *Env) footage(dock, id string) (string, error) {
	s, ok, err := e.Store.Filed(dock, id)
	if err == nil && !ok {
		err = errors.New("not filed")
	}
	return s.Path, err
}

// Close stops everything Launch started.
func (e *Env) Close() {
	for _, h := range e.Docks {
		h.Close()
	}
	if e.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = e.http.Shutdown(ctx)
		cancel()
	}
	if e.cancel != nil {
		e.cancel()
	}
	if e.Receiver != nil {
		e.Receiver.Close()
	}
	if e.DB != nil {
		e.DB.Close()
	}
	if e.broker != nil {
		e.broker.Close()
	}
}
