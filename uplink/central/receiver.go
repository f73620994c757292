// Package central owns the central office's reference receiver: grants, chunk assembly,
// hash verification, receipts and config pushes. It trusts no dock's hash but its own.
package central

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"dock/uplink/clock"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// Options configure a receiver.
type Options struct {
	Broker   string
	ClientID string
	Username string
	Password string
	TLS      *tls.Config
	Store    Storage
	// Share, when set, subscribes through the shared subscription group $share/<Share>/
	// so that several receivers split the docks' traffic, one recording's chunks too; they
	// must then share one Storage. A dock resends what a killed instance never acknowledged.
	Share string
	// SigningKey signs every message to a dock, sealed for it (grants, acks, receipts,
	// configs, commands: see wire.Seal; Ed25519, the docks' central_key is its public
	// half). Without it docks refuse everything central sends.
	SigningKey ed25519.PrivateKey
	// ManualGrants leaves every grant to the office (Receiver.Grant); otherwise the
	// receiver grants any dock that comes online or announces a backlog.
	ManualGrants bool
	// Grant policy.
	ChunkSize int
	Window    int
	RateBytes int64
	Workers   int
	// Limits bound what docks can make the receiver hold (zero fields take their
	// defaults): see Limits.
	Limits
	// Observer, when set, is told what the receiver took from docks (see Observer).
	Observer Observer
	// Clock times the grant pacing and the idle-upload sweep (nil: the real clock;
	// tests give a clock.Fake and advance it).
	Clock clock.Clock
}

// Receiver is one central receiver instance.
type Receiver struct {
	o    Options
	conn *mqttconn.Conn
	log  *slog.Logger

	shards []chan mqttconn.Message

	mu       sync.Mutex
	docks    *lru[string, *dockState]       // at most MaxDocks
	health   *lru[string, []wire.HealthMsg] // by device, across docks; at most MaxDevices
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	received atomic.Int64 // chunk bytes received, repeats included
}

// Start connects and begins receiving. It returns once subscribed.
func Start(ctx context.Context, o Options, log *slog.Logger) (*Receiver, error) {
	r := newReceiver(o, log)
	o = r.o
	if o.ChunkSize > o.MaxChunk {
		return nil, fmt.Errorf("central: ChunkSize %d past MaxChunk %d: every chunk granted would be refused", o.ChunkSize, o.MaxChunk)
	}
	filter := wire.DockRoot + "/+/#"
	if o.Share != "" {
		filter = "$share/" + o.Share + "/" + filter
	}
	conn, err := mqttconn.Dial(ctx, mqttconn.Options{
		Broker: o.Broker, ClientID: o.ClientID, Username: o.Username, Password: o.Password, TLS: o.TLS,
		// In a share group a session must end with its instance: mosquitto keeps routing
		// the group's messages to a persistent session whose client is gone.
		Subscriptions: map[string]byte{filter: 1}, CleanSession: o.Share != "", Inbox: 8192,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("central: %w", err)
	}
	r.conn = conn
	ctx, r.cancel = context.WithCancel(context.Background())
	for i := 0; i < o.Workers; i++ {
		ch := make(chan mqttconn.Message, 1024)
		r.shards = append(r.shards, ch)
		r.wg.Add(1)
		go r.work(ctx, ch)
	}
	r.wg.Add(1)
	go r.route(ctx)
	if o.IncomingExpiry > 0 {
		r.wg.Add(1)
		go r.sweep(ctx)
	}
	return r, nil
}

// newReceiver is a receiver with o's defaults filled in, not yet connected.
func newReceiver(o Options, log *slog.Logger) *Receiver {
	if o.ChunkSize == 0 {
		o.ChunkSize = 1 << 20 // measured: 4x the throughput of 256 KiB through mosquitto
	}
	if o.Window == 0 {
		o.Window = 32 // measured: 16 left the dock waiting on acknowledgements (bench-uplink 12 % slower)
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.ClientID == "" {
		o.ClientID = "central"
	}
	o.Limits = o.Limits.withDefaults(o.ChunkSize)
	o.Clock = clock.Or(o.Clock)
	return &Receiver{o: o, log: log, docks: newLRU[string, *dockState](o.MaxDocks), health: newLRU[string, []wire.HealthMsg](o.MaxDevices)}
}

// sweep removes uploads idle longer than IncomingExpiry, every SweepEvery.
func (r *Receiver) sweep(ctx context.Context) {
	defer r.wg.Done()
	t, ticks := r.o.Clock.NewTicker(r.o.SweepEvery)
	defer t.Stop()
	for {
		exp, err := r.o.Store.Expire(r.o.Clock.Now().Add(-r.o.IncomingExpiry))
		for _, p := range exp {
			if p.Filing {
				r.log.Warn("central: idle upload was verified: filed", "dock", p.Dock, "recording", p.ID, "bytes", p.Size, "idle_since", p.Touched)
				continue
			}
			r.log.Warn("central: idle upload expired, part and state removed; the dock sends it again from the start",
				"dock", p.Dock, "recording", p.ID, "held", p.Held, "size", p.Size, "idle_since", p.Touched, "expiry", r.o.IncomingExpiry)
		}
		if err != nil {
			r.log.Error("central: sweeping idle uploads", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
	}
}

// Close stops the receiver.
func (r *Receiver) Close() {
	r.cancel()
	r.conn.Close()
	r.wg.Wait()
}

// route keeps each dock's messages in order on one worker.
func (r *Receiver) route(ctx context.Context) {
	defer r.wg.Done()
	defer func() {
		for _, ch := range r.shards {
			close(ch)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-r.conn.Inbox():
			dock, _, ok := wire.SplitTopic(wire.DockRoot, m.Topic)
			if !ok {
				continue
			}
			r.shards[shardOf(dock, len(r.shards))] <- m
		}
	}
}

// shardOf picks the worker of a dock's messages, one of n.
func shardOf(dock string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(dock))
	return int(h.Sum32() % uint32(n)) // uint32: on 32-bit int(h) is negative for half the docks
}

func (r *Receiver) work(ctx context.Context, in <-chan mqttconn.Message) {
	defer r.wg.Done()
	for m := range in {
		dock, leaf, _ := wire.SplitTopic(wire.DockRoot, m.Topic)
		if err := r.handle(ctx, dock, leaf, m.Payload); err != nil {
			r.log.Warn("central: bad message", "dock", clip(dock, maxIDLen), "topic", clip(leaf, maxIDLen), "err", err)
		}
	}
}

func (r *Receiver) handle(ctx context.Context, dock, leaf string, p []byte) error {
	if err := safe(dock); err != nil {
		return fmt.Errorf("dock id: %w", err) // nothing kept of a dock no dock can be
	}
	switch leaf {
	case wire.TopicStatus:
		var s wire.StatusMsg
		if err := json.Unmarshal(p, &s); err != nil {
			return err
		}
		s = r.noteStatus(dock, s)
		r.observe(dock, "status", func(o Observer) error { return o.DockStatus(dock, s) })
		if s.State == "online" {
			// A dock that (re)appears, or one this receiver just learned of from the
			// retained status: let it upload what it holds.
			return r.grant(ctx, dock)
		}
	case wire.TopicBacklog:
		var b wire.BacklogMsg
		if err := json.Unmarshal(p, &b); err != nil {
			return err
		}
		if b.Count > 0 {
			return r.grant(ctx, dock)
		}
	case wire.TopicAlert:
		var a wire.AlertMsg
		if err := json.Unmarshal(p, &a); err != nil {
			return err
		}
		a, seen := r.noteAlert(dock, a)
		r.observe(dock, "alert", func(o Observer) error { return o.DockAlert(dock, a) })
		if !seen {
			r.log.Warn("central: fault alert", "dock", dock, "device", a.Device, "code", a.Code, "detail", a.Detail)
		}
	case wire.TopicReported:
		var rep wire.ReportedMsg
		if err := json.Unmarshal(p, &rep); err != nil {
			return err
		}
		rep = r.noteReported(dock, rep)
		r.observe(dock, "reported", func(o Observer) error { return o.DockReported(dock, rep) })
		r.log.Info("central: dock config", "dock", dock, "version", rep.Version, "status", rep.Status, "reason", rep.Reason)
	case wire.TopicHealth:
		var hm wire.HealthMsg
		if err := json.Unmarshal(p, &hm); err != nil {
			return err
		}
		if err := r.noteHealth(hm); err != nil {
			return fmt.Errorf("health: %w", err)
		}
		r.observe(dock, "health", func(o Observer) error { return o.DockHealth(dock, hm) })
	case wire.TopicTelemetry:
		var t wire.TelemetryMsg
		if err := json.Unmarshal(p, &t); err != nil {
			return err
		}
		r.observe(dock, "telemetry", func(o Observer) error { return o.DockTelemetry(dock, t) })
	case wire.TopicLedger:
		var l wire.LedgerMsg
		if err := json.Unmarshal(p, &l); err != nil {
			return err
		}
		r.noteLedger(dock, l.Entries)
		// Checked against the chain central holds for the dock, and acknowledged sealed.
		return r.ledgerAck(ctx, dock, l.Entries)
	case wire.TopicBegin:
		var b wire.BeginMsg
		if err := json.Unmarshal(p, &b); err != nil {
			return err
		}
		return r.begin(ctx, dock, b)
	case wire.TopicChunk:
		c, err := wire.ParseChunk(p)
		if err != nil {
			return err
		}
		return r.chunk(ctx, dock, c)
	case wire.TopicEnd:
		var e wire.EndMsg
		if err := json.Unmarshal(p, &e); err != nil {
			return err
		}
		return r.end(ctx, dock, e)
	}
	return nil
}

func (r *Receiver) publish(ctx context.Context, dock, leaf string, v any) error {
	b, err := r.encode(dock, v) // sealed for dock
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.conn.Publish(ctx, wire.CentralTopic(dock, leaf), 1, false, b)
}

// ack publishes a chunk's acknowledgement without waiting for the broker to take it: acks
// are cumulative, so a lost one is made good by the next, or by the dock's resend after
// 3 s without progress; waiting would put a broker round trip in every chunk's path.
func (r *Receiver) ack(dock string, a wire.AckMsg) error {
	b, err := r.encode(dock, a) // sealed for dock
	if err != nil {
		return err
	}
	_, err = r.conn.PublishAsync(wire.CentralTopic(dock, wire.TopicAck), 1, b)
	return err
}

// grant lets a dock upload everything, by its own priority order, at most every 2 s.
// grantEvery is the least time between two grants to one dock; a dock asking sooner gets
// its grant when the interval is over.
const grantEvery = 2 * time.Second

func (r *Receiver) grant(ctx context.Context, dock string) error {
	if r.o.ManualGrants {
		return nil
	}
	r.mu.Lock()
	d := r.state(dock)
	if since := r.o.Clock.Since(d.granted); since < grantEvery {
		// Asked again too soon: grant once the interval is over rather than never (the
		// grant just sent may have reached a dock not yet subscribed, after a restart).
		if !d.regrant {
			d.regrant = true
			r.o.Clock.AfterFunc(grantEvery-since, func() {
				r.mu.Lock()
				d.regrant = false
				r.mu.Unlock()
				if ctx.Err() == nil {
					if err := r.grant(ctx, dock); err != nil {
						r.log.Warn("central: deferred grant not sent", "dock", dock, "err", err)
					}
				}
			})
		}
		r.mu.Unlock()
		return nil
	}
	d.granted = r.o.Clock.Now()
	r.mu.Unlock()
	g := wire.GrantMsg{ID: fmt.Sprintf("g%d", time.Now().UnixNano()), ChunkSize: r.o.ChunkSize, Window: r.o.Window, RateBytes: r.o.RateBytes}
	return r.publish(ctx, dock, wire.TopicGrant, g)
}

// Grant publishes the office's own grant (a pause or a revocation too) to dock. A chunk
// size past MaxChunk is refused: central would refuse the chunks.
func (r *Receiver) Grant(ctx context.Context, dock string, g wire.GrantMsg) error {
	if err := g.Check(); err != nil {
		return err
	}
	if !g.Revoked && g.ChunkSize > r.o.MaxChunk {
		return fmt.Errorf("grant chunk size %d past this receiver's MaxChunk %d", g.ChunkSize, r.o.MaxChunk)
	}
	return r.publish(ctx, dock, wire.TopicGrant, g)
}

// PushConfig publishes a retained desired config for dock, sealed for it and expiring
// after ConfigTTL unless c sets its own Expires.
func (r *Receiver) PushConfig(ctx context.Context, dock string, c wire.ConfigMsg) error {
	if c.Expires.IsZero() {
		c.Expires = time.Now().Add(ConfigTTL).UTC().Truncate(time.Second)
	}
	if r.o.SigningKey != nil {
		wire.SealFor(&c, dock, nextSeq(), r.o.SigningKey)
	}
	return r.PublishConfig(ctx, dock, c)
}

// PublishConfig publishes c as it is, signed or not (tests use it to try forgeries).
func (r *Receiver) PublishConfig(ctx context.Context, dock string, c wire.ConfigMsg) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.conn.Publish(ctx, wire.CentralTopic(dock, wire.TopicConfig), 1, true, b)
}

// Command sends a one-off command to dock, sealed for it (a custody command needs By).
func (r *Receiver) Command(ctx context.Context, dock string, c wire.CommandMsg) error {
	return r.publish(ctx, dock, wire.TopicCommand, c)
}

// BytesReceived counts chunk bytes received since start, repeats included.
func (r *Receiver) BytesReceived() int64 { return r.received.Load() }

// Progress returns how many contiguous bytes of a dock's recording are stored so far.
func (r *Receiver) Progress(dock, id string) int64 {
	up, _, _ := r.o.Store.Held(dock, id)
	return up.Held
}

// Store is the receiver's storage.
func (r *Receiver) Store() Storage { return r.o.Store }
