// Package broker owns the embedded MQTT broker (mochi-mqtt) for a dock or demo with no broker
// of its own. It listens on loopback only and is no substitute for a fleet's broker cluster.
package broker

import (
	"fmt"
	"log/slog"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is a running embedded broker.
type Broker struct {
	srv  *mqtt.Server
	addr string
}

// Start listens on addr (a loopback host:port; port 0 picks a free one).
// Anything else is refused: the broker lets every client in (no passwords, no ACL), so a
// listener a network can reach would hand the dock's topics to anyone on it.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	if err := loopbackOnly(addr); err != nil {
		return nil, err
	}
	srv := mqtt.New(&mqtt.Options{Logger: log.With("component", "broker"), InlineClient: false})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "loopback", Address: addr})
	if err := srv.AddListener(l); err != nil {
		return nil, fmt.Errorf("broker listen %s: %w", addr, err)
	}
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("broker stopped", "err", err)
		}
	}()
	return &Broker{srv: srv, addr: l.Address()}, nil
}

// loopbackOnly refuses a listen address whose host is not a loopback address or localhost
// (an empty host, 0.0.0.0 and :: listen on every interface).
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("broker listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("broker listen %q: not a loopback address: the embedded broker admits every client, so it listens on loopback only", addr)
	}
	return nil
}

// URL is the broker's address for an MQTT client.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Close stops the broker.
func (b *Broker) Close() error { return b.srv.Close() }
