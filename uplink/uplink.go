// Package uplink owns the dock's side of the MQTT API: the session with its will, telemetry,
// alerts, config intake and the transfer sender. It frees nothing without a matching receipt.
package uplink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// Options configure the dock's session.
type Options struct {
	Broker   string
	Dock     string
	Username string
	Password string
	TLS      *tls.Config
	Version  string
}

// Uplink is the dock's MQTT session.
type Uplink struct {
	o    Options
	conn *mqttconn.Conn
	log  *slog.Logger

	grants   chan wire.GrantMsg
	acks     chan wire.AckMsg
	receipts chan wire.ReceiptMsg
	configs  chan wire.ConfigMsg
	commands chan wire.CommandMsg
	rejects  chan Rejected
	online   chan struct{}
}

// Rejected is a central message the dock could not accept.
type Rejected struct {
	Topic string
	Err   error
}

// Dial starts the session: it returns at once and keeps connecting in the background, with
// a retained "offline" will; on every connect it subscribes to the dock's central topics
// and the sender announces "online".
func Dial(ctx context.Context, o Options, log *slog.Logger) (*Uplink, error) {
	u := &Uplink{o: o, log: log,
		grants: make(chan wire.GrantMsg, 16), acks: make(chan wire.AckMsg, 1024), receipts: make(chan wire.ReceiptMsg, 256),
		configs: make(chan wire.ConfigMsg, 4), commands: make(chan wire.CommandMsg, 64), rejects: make(chan Rejected, 64),
		online: make(chan struct{}, 1)}
	will, _ := json.Marshal(wire.StatusMsg{State: "offline", Version: o.Version})
	conn, err := mqttconn.Dial(ctx, mqttconn.Options{
		Broker: o.Broker, ClientID: "dock-" + o.Dock, Username: o.Username, Password: o.Password, TLS: o.TLS,
		Will:          &mqttconn.Will{Topic: wire.DockTopic(o.Dock, wire.TopicStatus), Payload: will, Retained: true},
		Subscriptions: map[string]byte{wire.CentralRoot + "/" + o.Dock + "/#": 1},
		CleanSession:  false,
		Background:    true,
		OnConnect: func() {
			select {
			case u.online <- struct{}{}:
			default:
			}
		},
	}, log)
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	u.conn = conn
	go u.route()
	return u, nil
}

// Close publishes "offline" and disconnects.
func (u *Uplink) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = u.publish(ctx, wire.TopicStatus, true, wire.StatusMsg{State: "offline", Version: u.o.Version, Time: time.Now().UTC()})
	u.conn.Close()
}

// Online signals each (re)connection; the agent then announces status and backlog.
func (u *Uplink) Online() <-chan struct{} { return u.online }

// Connected reports whether the broker is reachable now.
func (u *Uplink) Connected() bool { return u.conn.Connected() }

// Configs delivers desired configs from central, parsed but not yet validated.
func (u *Uplink) Configs() <-chan wire.ConfigMsg { return u.configs }

// Commands delivers central's commands.
func (u *Uplink) Commands() <-chan wire.CommandMsg { return u.commands }

// Rejects delivers central messages that could not be parsed, for the ledger.
func (u *Uplink) Rejects() <-chan Rejected { return u.rejects }

func (u *Uplink) route() {
	for m := range u.conn.Inbox() {
		_, leaf, ok := wire.SplitTopic(wire.CentralRoot, m.Topic)
		if !ok {
			continue
		}
		var err error
		switch leaf {
		case wire.TopicGrant:
			var g wire.GrantMsg
			if err = json.Unmarshal(m.Payload, &g); err == nil {
				if err = g.Check(); err == nil {
					offer(u.grants, g)
				}
			}
		case wire.TopicAck:
			var a wire.AckMsg
			if err = json.Unmarshal(m.Payload, &a); err == nil {
				offer(u.acks, a)
			}
		case wire.TopicReceipt:
			var r wire.ReceiptMsg
			if err = json.Unmarshal(m.Payload, &r); err == nil {
				u.receipts <- r // receipts must not be dropped; the sender drains them
			}
		case wire.TopicConfig:
			var c wire.ConfigMsg
			if err = json.Unmarshal(m.Payload, &c); err == nil {
				u.configs <- c
			}
		case wire.TopicCommand:
			var c wire.CommandMsg
			if err = json.Unmarshal(m.Payload, &c); err == nil {
				u.commands <- c
			}
		default:
			err = fmt.Errorf("unknown topic")
		}
		if err != nil {
			u.log.Warn("uplink: rejected message from central", "topic", m.Topic, "err", err)
			offer(u.rejects, Rejected{Topic: m.Topic, Err: err})
		}
	}
}

// offer sends v unless the channel is full (the consumer recovers: acks are cumulative,
// grants are repeated).
func offer[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func (u *Uplink) publish(ctx context.Context, leaf string, retained bool, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", leaf, err)
	}
	return u.conn.Publish(ctx, wire.DockTopic(u.o.Dock, leaf), 1, retained, b)
}

// Announce publishes the retained online status.
func (u *Uplink) Announce(ctx context.Context) error {
	return u.publish(ctx, wire.TopicStatus, true, wire.StatusMsg{State: "online", Version: u.o.Version, Time: time.Now().UTC()})
}

// Telemetry publishes a telemetry report (QoS 0: the next one replaces it).
func (u *Uplink) Telemetry(ctx context.Context, t wire.TelemetryMsg) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return u.conn.Publish(ctx, wire.DockTopic(u.o.Dock, wire.TopicTelemetry), 0, false, b)
}

// Alert publishes a fault alert and waits for the broker to take it.
func (u *Uplink) Alert(ctx context.Context, a wire.AlertMsg) error {
	return u.publish(ctx, wire.TopicAlert, false, a)
}

// Backlog announces what waits to upload.
func (u *Uplink) Backlog(ctx context.Context, b wire.BacklogMsg) error {
	return u.publish(ctx, wire.TopicBacklog, false, b)
}

// ReportConfig publishes the dock's config report (retained).
func (u *Uplink) ReportConfig(ctx context.Context, r wire.ReportedMsg) error {
	return u.publish(ctx, wire.TopicReported, true, r)
}

// Health reports a device's health sample.
func (u *Uplink) Health(ctx context.Context, h wire.HealthMsg) error {
	return u.publish(ctx, wire.TopicHealth, false, h)
}

// Ledger exports ledger entries to central.
func (u *Uplink) Ledger(ctx context.Context, l wire.LedgerMsg) error {
	return u.publish(ctx, wire.TopicLedger, false, l)
}
