// Package central owns the central office's reference receiver: grants, chunk assembly,
// hash verification, receipts and config pushes. It trusts no dock's hash but its own.
package central

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
	// SigningKey signs every pushed config (Ed25519).
	SigningKey ed25519.PrivateKey
	// ManualGrants leaves every grant to the office (Receiver.Grant); otherwise the
	// receiver grants any dock that comes online or announces a backlog.
	ManualGrants bool
	// Grant policy.
	ChunkSize int
	Window    int
	RateBytes int64
	Workers   int
}

// Receiver is one central receiver instance.
type Receiver struct {
	o    Options
	conn *mqttconn.Conn
	log  *slog.Logger

	shards []chan mqttconn.Message

	mu       sync.Mutex
	streams  map[string]bool // dock/recording whose chunks this instance has seen
	granted  map[string]time.Time
	alerts   map[string]wire.AlertMsg
	reported map[string]wire.ReportedMsg
	status   map[string]wire.StatusMsg
	ledger   map[string][]json.RawMessage
	health   map[string][]wire.HealthMsg // by device, across docks
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	received atomic.Int64 // chunk bytes received, repeats included
}

// Start connects and begins receiving. It returns once subscribed.
func Start(ctx context.Context, o Options, log *slog.Logger) (*Receiver, error) {
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
	r := &Receiver{o: o, log: log, streams: map[string]bool{}, granted: map[string]time.Time{},
		alerts: map[string]wire.AlertMsg{}, reported: map[string]wire.ReportedMsg{}, status: map[string]wire.StatusMsg{}, ledger: map[string][]json.RawMessage{}, health: map[string][]wire.HealthMsg{}}
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
	return r, nil
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
			r.log.Warn("central: bad message", "dock", dock, "topic", leaf, "err", err)
		}
	}
}

func (r *Receiver) handle(ctx context.Context, dock, leaf string, p []byte) error {
	switch leaf {
	case wire.TopicStatus:
		var s wire.StatusMsg
		if err := json.Unmarshal(p, &s); err != nil {
			return err
		}
		r.mu.Lock()
		r.status[dock] = s
		r.mu.Unlock()
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
		r.mu.Lock()
		_, seen := r.alerts[dock+"/"+a.ID]
		r.alerts[dock+"/"+a.ID] = a
		r.mu.Unlock()
		if !seen {
			r.log.Warn("central: fault alert", "dock", dock, "device", a.Device, "code", a.Code, "detail", a.Detail)
		}
	case wire.TopicReported:
		var rep wire.ReportedMsg
		if err := json.Unmarshal(p, &rep); err != nil {
			return err
		}
		r.mu.Lock()
		r.reported[dock] = rep
		r.mu.Unlock()
		r.log.Info("central: dock config", "dock", dock, "version", rep.Version, "status", rep.Status, "reason", rep.Reason)
	case wire.TopicHealth:
		var hm wire.HealthMsg
		if err := json.Unmarshal(p, &hm); err != nil {
			return err
		}
		r.mu.Lock()
		r.health[hm.Device] = append(r.health[hm.Device], hm)
		r.mu.Unlock()
	case wire.TopicLedger:
		var l wire.LedgerMsg
		if err := json.Unmarshal(p, &l); err != nil {
			return err
		}
		r.mu.Lock()
		r.ledger[dock] = append(r.ledger[dock], l.Entries...)
		r.mu.Unlock()
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
	b, err := json.Marshal(v)
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
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = r.conn.PublishAsync(wire.CentralTopic(dock, wire.TopicAck), 1, b)
	return err
}

// grant lets a dock upload everything, by its own priority order, at most every 2 s.
func (r *Receiver) grant(ctx context.Context, dock string) error {
	if r.o.ManualGrants {
		return nil
	}
	r.mu.Lock()
	last := r.granted[dock]
	if time.Since(last) < 2*time.Second {
		r.mu.Unlock()
		return nil
	}
	r.granted[dock] = time.Now()
	r.mu.Unlock()
	g := wire.GrantMsg{ID: fmt.Sprintf("g%d", time.Now().UnixNano()), ChunkSize: r.o.ChunkSize, Window: r.o.Window, RateBytes: r.o.RateBytes}
	return r.publish(ctx, dock, wire.TopicGrant, g)
}

// Grant publishes the office's own grant (a pause or a revocation too) to dock.
func (r *Receiver) Grant(ctx context.Context, dock string, g wire.GrantMsg) error {
	if err := g.Check(); err != nil {
		return err
	}
	return r.publish(ctx, dock, wire.TopicGrant, g)
}

// reply is central's answer to one of a dock's transfer messages: an ack or a receipt.
type reply struct {
	ack     *wire.AckMsg
	receipt *wire.ReceiptMsg
}

// answer sends a reply; an ack of a chunk goes without waiting for the broker.
func (r *Receiver) answer(ctx context.Context, dock string, a reply, async bool) error {
	switch {
	case a.receipt != nil:
		return r.publish(ctx, dock, wire.TopicReceipt, *a.receipt)
	case a.ack != nil && async && a.ack.Error == "":
		return r.ack(dock, *a.ack)
	case a.ack != nil:
		return r.publish(ctx, dock, wire.TopicAck, *a.ack)
	}
	return nil
}

func (r *Receiver) begin(ctx context.Context, dock string, b wire.BeginMsg) error {
	a, err := answerBegin(r.o.Store, dock, b)
	switch {
	case err != nil:
		r.log.Error("central: begin failed, the dock is told why and retries", "dock", dock, "recording", b.Recording.ID, "err", err)
	case a.receipt != nil && a.receipt.Error != "":
		r.log.Error("central: other bytes for a filed recording refused", "dock", dock, "recording", b.Recording.ID,
			"filed_sha256", a.receipt.SHA256, "dock_sha256", b.SHA256)
	}
	return r.answer(ctx, dock, a, false)
}

// answerBegin is central's answer to a dock's begin: the offset it holds, or, for a
// recording the dock already filed, its receipt again. A begin central fails on (err) is
// answered too, with an ack whose error names the reason: the dock fails the transfer and
// tries it again after its backoff, and reports the recording stuck if that goes on.
func answerBegin(st Storage, dock string, b wire.BeginMsg) (reply, error) {
	id := b.Recording.ID
	refuse := func(err error) (reply, error) {
		return reply{ack: &wire.AckMsg{Transfer: b.Transfer, Recording: id, Error: err.Error()}}, err
	}
	if s, ok, err := st.Filed(dock, id); err != nil {
		return refuse(err)
	} else if ok {
		// Already verified: answer with the receipt again (idempotent by dock and
		// recording id; never another dock's record).
		return filedReceipt(s, filedAs(s, b.Size, b.SHA256)), nil
	}
	up, err := st.Begin(dock, b.Transfer, b.Recording, b.Size, b.SHA256)
	if filed := (*FiledError)(nil); errors.As(err, &filed) {
		return filedReceipt(filed.Stored, err), nil
	}
	if err != nil {
		return refuse(err)
	}
	return reply{ack: &wire.AckMsg{Transfer: b.Transfer, Recording: id, Offset: up.Held}}, nil
}

func (r *Receiver) chunk(ctx context.Context, dock string, c wire.Chunk) error {
	r.received.Add(int64(len(c.Data)))
	r.mu.Lock()
	key := dock + "/" + c.Recording
	if !r.streams[key] {
		if len(r.streams) > 10000 {
			clear(r.streams)
		}
		r.streams[key] = true
		r.log.Info("central: receiving chunks", "dock", dock, "recording", c.Recording, "instance", r.o.ClientID)
	}
	r.mu.Unlock()
	return r.answer(ctx, dock, answerChunk(r.o.Store, dock, c), true)
}

// answerChunk stores a chunk and acknowledges the contiguous offset.
func answerChunk(st Storage, dock string, c wire.Chunk) reply {
	up, err := st.Write(dock, c.Recording, c.Offset, c.Data)
	if err != nil {
		return reply{ack: &wire.AckMsg{Recording: c.Recording, Error: err.Error()}}
	}
	return reply{ack: &wire.AckMsg{Transfer: up.Transfer, Recording: c.Recording, Offset: up.Held}}
}

func (r *Receiver) end(ctx context.Context, dock string, e wire.EndMsg) error {
	a, s, err := answerEnd(r.o.Store, dock, e)
	var bad *MismatchError
	var filed *FiledError
	switch {
	case errors.As(err, &bad):
		r.log.Error("central: hash mismatch", "dock", dock, "recording", e.Recording, "central", bad.SHA256, "dock_sha256", e.SHA256)
	case errors.As(err, &filed):
		r.log.Error("central: other bytes for a filed recording refused", "dock", dock, "recording", e.Recording,
			"filed_sha256", filed.Stored.SHA256, "dock_sha256", e.SHA256)
	case err != nil:
		r.log.Error("central: end failed, the dock is told why and retries", "dock", dock, "recording", e.Recording, "err", err)
	case a.receipt != nil && a.receipt.Error == "":
		r.mu.Lock()
		delete(r.streams, dock+"/"+e.Recording)
		r.mu.Unlock()
		r.log.Info("central: recording verified", "dock", dock, "recording", e.Recording, "bytes", s.Size, "sha256", s.SHA256)
	}
	return r.answer(ctx, dock, a, false)
}

// filedReceipt is the receipt of a filed recording: refusing, with what was filed, other
// bytes announced for it (err a *FiledError with Other).
func filedReceipt(s Stored, err error) reply {
	rc := &wire.ReceiptMsg{Recording: s.Meta.ID, Size: s.Size, SHA256: s.SHA256, Stored: s.Stored}
	if filed := (*FiledError)(nil); errors.As(err, &filed) && filed.Other {
		rc.Error = "already filed with other bytes"
	}
	return reply{receipt: rc}
}

// answerEnd finishes an upload: the receipt, an ack of the offset held if bytes are
// missing, or a refusal with central's hash. Central's own failure (err, none of those) is
// answered with an ack whose error names the reason: the dock fails the transfer and
// tries it again after its backoff (begin, then end), and reports it stuck if that goes on.
func answerEnd(st Storage, dock string, e wire.EndMsg) (reply, Stored, error) {
	s, err := st.Finish(dock, e.Recording, e.Size, e.SHA256)
	var inc *IncompleteError
	var bad *MismatchError
	var filed *FiledError
	switch {
	case errors.As(err, &filed):
		return filedReceipt(filed.Stored, err), filed.Stored, err
	case errors.As(err, &inc):
		return reply{ack: &wire.AckMsg{Transfer: e.Transfer, Recording: e.Recording, Offset: inc.Held, Error: "incomplete"}}, s, nil
	case errors.As(err, &bad):
		return reply{receipt: &wire.ReceiptMsg{Recording: e.Recording, Size: bad.Size, SHA256: bad.SHA256, Error: "hash mismatch"}}, s, err
	case err != nil:
		return reply{ack: &wire.AckMsg{Transfer: e.Transfer, Recording: e.Recording, Error: err.Error()}}, s, err
	}
	return reply{receipt: &wire.ReceiptMsg{Recording: e.Recording, Size: s.Size, SHA256: s.SHA256, Stored: s.Stored}}, s, nil
}

// PushConfig publishes a retained desired config for dock.
func (r *Receiver) PushConfig(ctx context.Context, dock string, c wire.ConfigMsg) error {
	if r.o.SigningKey != nil {
		c.Sign(r.o.SigningKey)
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

// Command sends a one-off command to dock.
func (r *Receiver) Command(ctx context.Context, dock string, c wire.CommandMsg) error {
	return r.publish(ctx, dock, wire.TopicCommand, c)
}

// Alerts returns the latest alert of every fault seen, by dock/fault id.
func (r *Receiver) Alerts() map[string]wire.AlertMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]wire.AlertMsg, len(r.alerts))
	for k, v := range r.alerts {
		out[k] = v
	}
	return out
}

// Reported returns a dock's last config report.
func (r *Receiver) Reported(dock string) (wire.ReportedMsg, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.reported[dock]
	return v, ok
}

// Ledger returns the ledger entries a dock exported, in arrival order.
func (r *Receiver) Ledger(dock string) []json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]json.RawMessage(nil), r.ledger[dock]...)
}

// BytesReceived counts chunk bytes received since start, repeats included.
func (r *Receiver) BytesReceived() int64 { return r.received.Load() }

// Progress returns how many contiguous bytes of a dock's recording are stored so far.
func (r *Receiver) Progress(dock, id string) int64 {
	up, _, _ := r.o.Store.Held(dock, id)
	return up.Held
}

// Health returns a device's health samples from every dock, in arrival order.
func (r *Receiver) Health(device string) []wire.HealthMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.HealthMsg(nil), r.health[device]...)
}

// Store is the receiver's storage.
func (r *Receiver) Store() Storage { return r.o.Store }
