package central

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"dock/uplink/broker"
	"dock/uplink/wire"
)

// failingStore is central's store failing for good on some recordings: its index cannot
// be read (begin), or its filing fails (end).
type failingStore struct {
	Storage
	filed, finish string // recording ids
}

func (f failingStore) Filed(dock, id string) (Stored, bool, error) {
	if id == f.filed {
		return Stored{}, false, errors.New("index entry unreadable: input/output error")
	}
	return f.Storage.Filed(dock, id)
}

func (f failingStore) Finish(dock, id string, size int64, sum string) (Stored, error) {
	if id == f.finish {
		return Stored{}, errors.New("recordings/dock-1/CAM-1 holds another file: refusing to replace it")
	}
	return f.Storage.Finish(dock, id, size, sum)
}

// syncBuffer is a log destination tests read while the receiver writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRig is newRig with the receiver's options and log of the test's choosing.
func startRig(t *testing.T, o Options, log *slog.Logger) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	b, err := broker.Start("127.0.0.1:0", quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r := &rig{ctx: ctx, store: FileStore{Dir: t.TempDir()}, url: b.URL()}
	if o.Store == nil {
		o.Store = r.store
	}
	o.Broker, o.ClientID, o.ManualGrants = r.url, "central-test", true
	r.rcv, err = Start(ctx, o, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.rcv.Close)
	return r
}

// answerWithin is answer, failing the test if central says nothing for a while.
func (d *dockSession) answerWithin(id string, wait time.Duration) (*wire.AckMsg, *wire.ReceiptMsg) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.r.ctx, wait)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			d.t.Fatalf("%s: no answer from central on %s within %s", d.name, id, wait)
		case m := <-d.conn.Inbox():
			_, leaf, _ := wire.SplitTopic(wire.CentralRoot, m.Topic)
			switch leaf {
			case wire.TopicAck:
				var a wire.AckMsg
				if json.Unmarshal(m.Payload, &a) == nil && a.Recording == id {
					return &a, nil
				}
			case wire.TopicReceipt:
				var r wire.ReceiptMsg
				if json.Unmarshal(m.Payload, &r) == nil && r.Recording == id {
					return nil, &r
				}
			}
		}
	}
}

// A begin or an end that central fails on is answered, with the reason, so that the dock
// fails the transfer and retries it with backoff (and reports it stuck if it goes on),
// instead of waiting for an answer that never comes; central logs it at Error level with
// the dock and the recording.
func TestFailedBeginAndEndAreAnsweredWithTheReason(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	base := FileStore{Dir: t.TempDir()}
	r := startRig(t, Options{Store: failingStore{Storage: base, filed: "CAM-1_VID_0001.mp4", finish: "CAM-1_VID_0002.mp4"}}, log)
	d := r.dock(t, "dock-1")

	// End: filing fails.
	meta := wire.RecordingMeta{ID: "CAM-1_VID_0002.mp4", Device: "CAM-1"}
	data, sum := footage(4096, 51)
	d.send(wire.TopicBegin, wire.BeginMsg{Transfer: "t2", Recording: meta, Size: int64(len(data)), SHA256: sum})
	if a, rc := d.answerWithin(meta.ID, 5*time.Second); a == nil || a.Error != "" {
		t.Fatalf("begin answered %+v %+v", a, rc)
	}
	d.send(wire.TopicChunk, wire.AppendChunk(nil, wire.Chunk{Recording: meta.ID, Data: data}))
	if a, rc := d.answerWithin(meta.ID, 5*time.Second); a == nil || a.Offset != int64(len(data)) {
		t.Fatalf("chunk answered %+v %+v", a, rc)
	}
	d.send(wire.TopicEnd, wire.EndMsg{Transfer: "t2", Recording: meta.ID, Size: int64(len(data)), SHA256: sum})
	a, rc := d.answerWithin(meta.ID, 5*time.Second)
	if a == nil || !strings.Contains(a.Error, "refusing to replace it") {
		t.Fatalf("failed end answered %+v %+v, want an ack naming the error", a, rc)
	}

	// Begin: the store cannot say whether the recording is filed.
	meta = wire.RecordingMeta{ID: "CAM-1_VID_0001.mp4", Device: "CAM-1"}
	d.send(wire.TopicBegin, wire.BeginMsg{Transfer: "t1", Recording: meta, Size: int64(len(data)), SHA256: sum})
	a, rc = d.answerWithin(meta.ID, 5*time.Second)
	if a == nil || !strings.Contains(a.Error, "input/output error") {
		t.Fatalf("failed begin answered %+v %+v, want an ack naming the error", a, rc)
	}

	for _, id := range []string{"CAM-1_VID_0001.mp4", "CAM-1_VID_0002.mp4"} {
		found := false
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=ERROR") && strings.Contains(line, "dock=dock-1") && strings.Contains(line, "recording="+id) {
				found = true
			}
		}
		if !found {
			t.Errorf("no Error log naming dock-1 and %s:\n%s", id, logs.String())
		}
	}
}
