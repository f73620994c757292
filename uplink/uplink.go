// Package uplink owns the dock's side of the MQTT API: the session with its will, telemetry,
// alerts, config intake and the transfer sender. It frees nothing without a matching receipt.
package uplink

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// CentralKey is central's Ed25519 public key (the agent's central_key). Every message
	// from central must be signed with it and sealed for Dock (wire.Open); without it
	// nothing from central is accepted.
	CentralKey ed25519.PublicKey
}

// transport is the MQTT connection as the session needs it; *mqttconn.Conn is the real
// one, tests give a fake that plays the broker and central.
type transport interface {
	Inbox() <-chan mqttconn.Message
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
	PublishAsync(topic string, qos byte, payload []byte) (<-chan struct{}, error)
	Connected() bool
	Close()
}

// Uplink is the dock's MQTT session.
type Uplink struct {
	o    Options
	conn transport
	log  *slog.Logger

	// route hands each central message to its consumer's channel and never waits on one:
	// a consumer that is busy (the sender inside a transfer, the agent applying a config)
	// must hold back neither the other kinds nor the connection. Grants, receipts, configs
	// and commands go through mailboxes that keep their order and drop nothing; acks,
	// the high-rate path, through one that merges an ack into the one queued before it
	// for the same transfer (acks are cumulative: the higher offset says all).
	grants   chan wire.GrantMsg
	acks     chan wire.AckMsg
	receipts chan wire.ReceiptMsg
	configs  chan wire.ConfigMsg
	commands chan wire.CommandMsg
	// ledgerAcks: central's acknowledgements of the ledger head; only the newest matters
	// (the agent keeps the highest as its anchor), so one that finds the channel full is
	// dropped and the next batch's makes it good.
	ledgerAcks chan wire.LedgerAckMsg
	rejects    chan Rejected
	online     chan struct{}

	grantBox   *mailbox[wire.GrantMsg]
	ackBox     *mailbox[wire.AckMsg]
	receiptBox *mailbox[wire.ReceiptMsg]
	configBox  *mailbox[wire.ConfigMsg]
	commandBox *mailbox[wire.CommandMsg]

	connects atomic.Uint64 // connections made so far
	done     chan struct{}
	closing  sync.Once
}

// Rejected is a central message the dock could not accept.
type Rejected struct {
	Topic string
	Err   error
	// Config is a config refused here (its seal), so the agent can report it to central.
	Config *wire.ConfigMsg
}

// Dial starts the session: it returns at once and keeps connecting in the background, with
// a retained "offline" will; on every connect it subscribes to the dock's central topics
// and the sender announces "online".
func Dial(ctx context.Context, o Options, log *slog.Logger) (*Uplink, error) {
	u := newUplink(o, log)
	will, _ := json.Marshal(wire.StatusMsg{State: "offline", Version: o.Version})
	conn, err := mqttconn.Dial(ctx, mqttconn.Options{
		Broker: o.Broker, ClientID: "dock-" + o.Dock, Username: o.Username, Password: o.Password, TLS: o.TLS,
		Will:          &mqttconn.Will{Topic: wire.DockTopic(o.Dock, wire.TopicStatus), Payload: will, Retained: true},
		Subscriptions: map[string]byte{wire.CentralRoot + "/" + o.Dock + "/#": 1},
		// Receipts and acks are what custody depends on: a dock far behind its inbox
		// still keeps every one.
		Essential: func(topic string) bool {
			_, leaf, ok := wire.SplitTopic(wire.CentralRoot, topic)
			return ok && (leaf == wire.TopicReceipt || leaf == wire.TopicAck)
		},
		CleanSession: false,
		Background:   true,
		OnConnect:    u.connected,
	}, log)
	if err != nil {
		u.closing.Do(func() { close(u.done) })
		return nil, fmt.Errorf("uplink: %w", err)
	}
	u.start(conn)
	return u, nil
}

// newUplink makes a session with its mailboxes running, not yet on a connection.
func newUplink(o Options, log *slog.Logger) *Uplink {
	u := &Uplink{o: o, log: log,
		// Unbuffered: a grant not yet taken waits in its mailbox, where a newer one
		// replaces it, so the sender never works through stale grants.
		grants: make(chan wire.GrantMsg), acks: make(chan wire.AckMsg, 1024), receipts: make(chan wire.ReceiptMsg, 256),
		configs: make(chan wire.ConfigMsg, 4), commands: make(chan wire.CommandMsg, 64), rejects: make(chan Rejected, 64),
		ledgerAcks: make(chan wire.LedgerAckMsg, 16),
		online:     make(chan struct{}, 1), done: make(chan struct{})}
	u.grantBox = newMailbox(u.grants, true, u.done, log)
	u.ackBox = newMailbox(u.acks, false, u.done, log)
	u.ackBox.merge = mergeAck
	u.receiptBox = newMailbox(u.receipts, false, u.done, log)
	u.configBox = newMailbox(u.configs, false, u.done, log)
	u.commandBox = newMailbox(u.commands, false, u.done, log)
	return u
}

// start puts the session on its connection: route runs until Close.
func (u *Uplink) start(conn transport) {
	u.conn = conn
	go u.route()
}

// connected counts a (re)connection and signals it on Online.
func (u *Uplink) connected() {
	u.connects.Add(1)
	select {
	case u.online <- struct{}{}:
	default:
	}
}

// Close publishes "offline" and disconnects.
func (u *Uplink) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = u.publish(ctx, wire.TopicStatus, true, wire.StatusMsg{State: "offline", Version: u.o.Version, Time: time.Now().UTC()})
	u.conn.Close()
	u.closing.Do(func() { close(u.done) })
}

// connections counts the connections made so far: a transfer that saw it change lost
// its connection on the way.
func (u *Uplink) connections() uint64 { return u.connects.Load() }

// Online signals each (re)connection; the agent then announces status and backlog.
func (u *Uplink) Online() <-chan struct{} { return u.online }

// Connected reports whether the broker is reachable now.
func (u *Uplink) Connected() bool { return u.conn.Connected() }

// Configs delivers desired configs from central, parsed but not yet validated.
func (u *Uplink) Configs() <-chan wire.ConfigMsg { return u.configs }

// Commands delivers central's commands.
func (u *Uplink) Commands() <-chan wire.CommandMsg { return u.commands }

// LedgerAcks delivers central's sealed acknowledgements of the dock's ledger head.
func (u *Uplink) LedgerAcks() <-chan wire.LedgerAckMsg { return u.ledgerAcks }

// Rejects delivers central messages that could not be parsed, for the ledger.
func (u *Uplink) Rejects() <-chan Rejected { return u.rejects }

// ErrStale means a grant or command is not newer than the last of its kind the dock took:
// a replay.
var ErrStale = errors.New("not newer than the last accepted")

// fresh accepts seq if it is above *last, and records it.
func fresh(kind string, seq uint64, last *uint64) error {
	if seq <= *last {
		return fmt.Errorf("%w %s: seq %d, last %d", ErrStale, kind, seq, *last)
	}
	*last = seq
	return nil
}

// route hands each message from central to its consumer until Close.
func (u *Uplink) route() {
	var r router
	for {
		select {
		case <-u.done:
			return
		case m := <-u.conn.Inbox():
			u.handle(&r, m)
		}
	}
}

// router is what route remembers between messages: the last grant and command taken,
// this session. A grant or command captured off the broker and published again is
// refused (grants need no more: a restarted dock waits for a new grant, and an old one
// replayed to it is at worst what central once let it do; the agent persists the last
// command's).
type router struct {
	lastGrant, lastCommand uint64
}

// handle opens one message from central and puts it in its consumer's mailbox, or
// reports it rejected. It never waits on a consumer.
func (u *Uplink) handle(rt *router, m mqttconn.Message) {
	lastGrant, lastCommand := &rt.lastGrant, &rt.lastCommand
	dock, leaf, ok := wire.SplitTopic(wire.CentralRoot, m.Topic)
	if !ok {
		return
	}
	// open decodes a message and lets it through only if central signed it for this
	// dock (DESIGN.md, invariant 8): whoever else can publish on the broker reaches no
	// consumer. The topic's dock must be ours too (the subscription makes it so).
	open := func(v wire.Sealed) error {
		if err := json.Unmarshal(m.Payload, v); err != nil {
			return err
		}
		if u.o.CentralKey == nil {
			return fmt.Errorf("no central_key configured: messages from central cannot be verified, none is accepted")
		}
		if dock != u.o.Dock {
			return fmt.Errorf("%w: topic of dock %q", wire.ErrOtherDock, dock)
		}
		return wire.Open(v, u.o.CentralKey, u.o.Dock)
	}
	var err error
	var refused *wire.ConfigMsg
	switch leaf {
	case wire.TopicGrant:
		var g wire.GrantMsg
		if err = open(&g); err == nil {
			if err = g.Check(); err == nil {
				if err = fresh("grant", g.Seq, lastGrant); err == nil {
					u.grantBox.put(g) // a new grant replaces one not yet taken
				}
			}
		}
	case wire.TopicAck:
		var a wire.AckMsg
		if err = open(&a); err == nil {
			u.ackBox.put(a) // merged into the one queued before it for the same transfer
		}
	case wire.TopicReceipt:
		var r wire.ReceiptMsg
		if err = open(&r); err == nil {
			u.receiptBox.put(r)
		}
	case wire.TopicConfig:
		var c wire.ConfigMsg
		if err = open(&c); err == nil {
			u.configBox.put(c) // Version orders configs; the agent checks it and Expires
		} else if c.Version != 0 {
			refused = &c
		}
	case wire.TopicCommand:
		var c wire.CommandMsg
		if err = open(&c); err == nil {
			// The agent checks Seq against the last command it persisted too.
			if err = fresh("command", c.Seq, lastCommand); err == nil {
				u.commandBox.put(c)
			}
		}
	case wire.TopicLedgerAck:
		var a wire.LedgerAckMsg
		if err = open(&a); err == nil {
			offer(u.ledgerAcks, a) // not ordered by Seq: the agent keeps the highest head
		}
	default:
		err = fmt.Errorf("unknown topic")
	}
	if err != nil {
		u.log.Warn("uplink: rejected message from central", "topic", m.Topic, "err", err)
		offer(u.rejects, Rejected{Topic: m.Topic, Err: err, Config: refused})
	}

}

// mergeAck merges a, central's ack, into the last ack queued for the same transfer of the
// same recording when neither carries an error: acks are cumulative, so the higher offset
// (with its own seal) stands for both. Acks of different transfers keep their own.
func mergeAck(queued *wire.AckMsg, a wire.AckMsg) (same, merged bool) {
	if queued.Recording != a.Recording || queued.Transfer != a.Transfer {
		return false, false
	}
	if queued.Error != "" || a.Error != "" {
		return true, false
	}
	if a.Offset > queued.Offset {
		*queued = a
	}
	return true, true
}

// offer sends v unless the channel is full. Only for what may be lost: ledger acks (the
// next batch's makes a lost one good) and rejects (each is logged in route either way).
func offer[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// mailbox hands values to out in the order put, from its own goroutine: put never
// blocks and nothing is dropped. With latest set only the newest value not yet handed
// over is kept (a grant replaces the last at once, so an older one means nothing).
// Central's messages are few and small; a consumer that stops reading for good grows it
// without bound, which the warning below makes visible. With merge set, a value merges
// into the last one queued of the same kind (merge says: same, and merged), instead of
// queueing behind; one merge refuses queues behind.
type mailbox[T any] struct {
	out    chan<- T
	latest bool
	merge  func(queued *T, v T) (same, merged bool)
	log    *slog.Logger
	mu     sync.Mutex
	q      []T
	warned int
	wake   chan struct{}
}

func newMailbox[T any](out chan<- T, latest bool, done <-chan struct{}, log *slog.Logger) *mailbox[T] {
	m := &mailbox[T]{out: out, latest: latest, log: log, wake: make(chan struct{}, 1)}
	go m.run(done)
	return m
}

func (m *mailbox[T]) put(v T) {
	m.mu.Lock()
	if m.latest {
		clear(m.q)
		m.q = m.q[:0]
	}
	for i := len(m.q) - 1; m.merge != nil && i >= 0; i-- {
		same, merged := m.merge(&m.q[i], v)
		if merged {
			m.mu.Unlock()
			return
		}
		if same {
			break
		}
	}
	m.q = append(m.q, v)
	if n := len(m.q); n >= 1024 && n >= 2*m.warned {
		m.warned = n
		m.log.Warn("uplink: consumer of central's messages behind", "type", fmt.Sprintf("%T", v), "waiting", n)
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *mailbox[T]) run(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-m.wake:
		}
		for {
			m.mu.Lock()
			if len(m.q) == 0 {
				m.q, m.warned = nil, 0
				m.mu.Unlock()
				break
			}
			v := m.q[0]
			var zero T
			m.q[0] = zero
			m.q = m.q[1:]
			m.mu.Unlock()
			select {
			case m.out <- v:
			case <-done:
				return
			}
		}
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
