// Package mqttconn owns one MQTT connection over paho: connect and will, re-subscribing on
// every connect, and handlers that never block paho's network loop. Received messages
// reach the consumer in the order the broker delivered them, none dropped. It knows no
// topics.
package mqttconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Message is a received MQTT message, copied out of paho.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Will is the message the broker publishes when the connection dies.
type Will struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Options configure a connection.
type Options struct {
	Broker        string // tcp://127.0.0.1:1883, ssl://host:8883
	ClientID      string
	Username      string
	Password      string
	TLS           *tls.Config
	Will          *Will
	Subscriptions map[string]byte // filter -> QoS, (re)made on every connect
	// OnConnect runs (in its own goroutine) after every successful connect and subscribe.
	OnConnect func()
	// CleanSession false keeps the broker's session (subscriptions and queued QoS 1
	// messages) across disconnections.
	CleanSession bool
	Inbox        int // received messages buffered for the consumer; default 4096
	// Backlog bounds the payload bytes of received messages waiting behind a full inbox;
	// default 64 MiB. Only past it is a message dropped (and logged): a consumer that far
	// behind is broken, and the process must not run out of memory over it.
	Backlog int
	// Essential names the topics whose messages are never dropped, not even past Backlog
	// (the dock's receipts and acks: what custody depends on). They must be small and few
	// per other message: only whoever may publish on them (the broker's ACL) can grow
	// the backlog without bound.
	Essential func(topic string) bool
	// Background returns from Dial at once and keeps connecting behind: a dock must
	// offload cameras even when it boots with the broker out of reach.
	Background bool
}

// ErrOffline means the broker is not reachable now; the caller keeps what it must send.
var ErrOffline = errors.New("mqtt: not connected")

// Conn is one MQTT connection.
type Conn struct {
	c       mqtt.Client
	log     *slog.Logger
	inbox   chan Message
	dropped atomic.Int64
	up      atomic.Bool

	// Messages that found the inbox full wait here, in order, for feed to hand them over:
	// paho's router (which also reads the broker's acknowledgements and ping answers)
	// never waits on the consumer, and nothing overtakes them.
	mu      sync.Mutex
	waiting []Message
	held    int // payload bytes in waiting
	backlog int
	// essential: see Options.Essential; never nil.
	essential func(topic string) bool
	wake      chan struct{}
	closed    chan struct{}
	once      sync.Once
}

// Dial connects, retrying until ctx ends. Once connected it reconnects by itself.
func Dial(ctx context.Context, o Options, log *slog.Logger) (*Conn, error) {
	if o.Inbox == 0 {
		o.Inbox = 4096
	}
	if o.Backlog == 0 {
		o.Backlog = 64 << 20
	}
	if o.Essential == nil {
		o.Essential = func(string) bool { return false }
	}
	c := &Conn{log: log, inbox: make(chan Message, o.Inbox), backlog: o.Backlog, essential: o.Essential,
		wake: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.feed()
	opts := mqtt.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetUsername(o.Username).
		SetPassword(o.Password).
		SetCleanSession(o.CleanSession).
		SetKeepAlive(15 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).
		// Handlers run one at a time in paho's router, in arrival order: central's pause
		// and the resume after it, or two commands, must not be applied reversed. take
		// never blocks, so a slow consumer does not stall the connection.
		SetOrderMatters(true).
		SetWriteTimeout(10 * time.Second)
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS)
	}
	if o.Will != nil {
		opts.SetBinaryWill(o.Will.Topic, o.Will.Payload, 1, o.Will.Retained)
	}
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.take(m) })
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		c.up.Store(false)
		log.Warn("mqtt connection lost", "broker", o.Broker, "err", err)
	})
	opts.SetOnConnectHandler(func(cl mqtt.Client) {
		// Nothing resubscribes by itself after a reconnect: subscribe here, without
		// waiting inside paho's callback.
		go func() {
			if len(o.Subscriptions) > 0 {
				t := cl.SubscribeMultiple(o.Subscriptions, func(_ mqtt.Client, m mqtt.Message) { c.take(m) })
				if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
					log.Error("mqtt subscribe failed", "err", t.Error())
					return
				}
			}
			c.up.Store(true)
			log.Info("mqtt connected", "broker", o.Broker, "client", o.ClientID)
			if o.OnConnect != nil {
				o.OnConnect()
			}
		}()
	})
	if o.Background {
		opts.SetConnectRetry(true).SetConnectRetryInterval(2 * time.Second)
	}
	c.c = mqtt.NewClient(opts)
	if o.Background {
		c.c.Connect() // completes by itself once the broker answers
		return c, nil
	}
	for {
		t := c.c.Connect()
		if t.WaitTimeout(6*time.Second) && t.Error() == nil {
			break
		}
		err := t.Error()
		select {
		case <-ctx.Done():
			c.shut(0)
			return nil, fmt.Errorf("mqtt connect %s: %w (last error: %v)", o.Broker, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Wait for the subscriptions of the first connect.
	for !c.up.Load() {
		select {
		case <-ctx.Done():
			c.shut(0)
			return nil, fmt.Errorf("mqtt subscribe %s: %w", o.Broker, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return c, nil
}

// take hands m to the inbox, or behind it to the waiting list when the inbox is full (past
// the backlog, only an essential message still is: others are dropped), and returns at once: it runs in paho's router, which must never wait on us (it also reads the
// broker's acknowledgements: a consumer blocked in Publish would deadlock). The payload is
// not copied: paho allocates each one afresh (packets.PublishPacket.Unpack) and keeps no
// reference after the handler.
func (c *Conn) take(m mqtt.Message) {
	msg := Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiting) == 0 {
		// Nothing waits ahead of it: straight to the inbox if there is room.
		select {
		case c.inbox <- msg:
			return
		default:
		}
	}
	if c.held+len(msg.Payload) > c.backlog && !c.essential(msg.Topic) {
		if c.dropped.Add(1)%100 == 1 {
			c.log.Error("mqtt consumer too far behind, message dropped", "topic", msg.Topic,
				"waiting", len(c.waiting), "bytes", c.held, "dropped", c.dropped.Load())
		}
		return
	}
	c.waiting = append(c.waiting, msg)
	c.held += len(msg.Payload)
	if n := len(c.waiting); n&(n-1) == 0 && n >= 1024 {
		c.log.Warn("mqtt consumer behind", "waiting", n, "bytes", c.held)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// feed moves waiting messages into the inbox, oldest first, as the consumer makes room.
// The head stays in the list until it is in the inbox, so take queues behind it.
func (c *Conn) feed() {
	for {
		select {
		case <-c.closed:
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			if len(c.waiting) == 0 {
				c.waiting = nil // let a burst's backing array go
				c.mu.Unlock()
				break
			}
			msg := c.waiting[0]
			c.mu.Unlock()
			select {
			case c.inbox <- msg:
			case <-c.closed:
				return
			}
			c.mu.Lock()
			c.waiting[0] = Message{}
			c.waiting = c.waiting[1:]
			c.held -= len(msg.Payload)
			c.mu.Unlock()
		}
	}
}

// Inbox delivers received messages.
func (c *Conn) Inbox() <-chan Message { return c.inbox }

// Connected reports whether the connection is up and subscribed.
func (c *Conn) Connected() bool { return c.up.Load() && c.c.IsConnectionOpen() }

// Publish sends payload and, for QoS 1, waits for the broker's acknowledgement until ctx
// ends. It fails fast with ErrOffline while disconnected.
func (c *Conn) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	if !c.c.IsConnectionOpen() {
		return fmt.Errorf("publish %s: %w", topic, ErrOffline)
	}
	t := c.c.Publish(topic, qos, retained, payload)
	if qos == 0 {
		return nil
	}
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", topic, ctx.Err())
	}
}

// PublishAsync sends payload without waiting; the returned channel closes when the broker
// acknowledged it (or the attempt failed). Used to keep a window of chunks in flight.
func (c *Conn) PublishAsync(topic string, qos byte, payload []byte) (<-chan struct{}, error) {
	if !c.c.IsConnectionOpen() {
		return nil, fmt.Errorf("publish %s: %w", topic, ErrOffline)
	}
	return c.c.Publish(topic, qos, false, payload).Done(), nil
}

// Close disconnects, letting in-flight work finish for up to a second. Messages still
// waiting for the consumer's inbox are let go.
func (c *Conn) Close() { c.shut(1000) }

func (c *Conn) shut(quiesce uint) {
	c.up.Store(false)
	c.c.Disconnect(quiesce)
	c.once.Do(func() { close(c.closed) })
}
