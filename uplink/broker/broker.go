// Package broker owns the embedded MQTT broker (mochi-mqtt) for a dock or demo with no broker
// of its own. It listens on loopback only and is no substitute for a fleet's broker cluster.
package broker

import (
	"fmt"
	"log/slog"

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
func Start(addr string, log *slog.Logger) (*Broker, error) {
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

// URL is the broker's address for an MQTT client.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Close stops the broker.
func (b *Broker) Close() error { return b.srv.Close() }
