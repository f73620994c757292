package central

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"dock/uplink/broker"
	"dock/uplink/mqttconn"
	"dock/uplink/wire"
)

// Dock B files forged bytes under a recording id of dock A (issue #14, finding 3): central
// files what each dock sent under that dock, and answers each dock with its own record
// only. Dock A's real upload is accepted and verified; B's filing stays as it was.
func TestDocksKeepTheirOwnRecordings(t *testing.T) {
	const size = 96 << 10
	real, realSum := footage(size, 11)
	forged, forgedSum := footage(size, 12)
	meta := wire.RecordingMeta{ID: "CAM-1_VID_0001.mp4", Device: "CAM-1"}
	tests := []struct {
		name  string
		first string // the dock that uploads first
		same  bool   // dock B sends the same bytes (a camera docked at both before a receipt)
	}{
		{"forger first", "dock-B", false},
		{"owner first", "dock-A", false},
		{"same bytes from two docks", "dock-B", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := FileStore{Dir: t.TempDir()}
			upload := func(dock string, data []byte, sum string) Stored {
				t.Helper()
				up, err := fs.Begin(dock, "t-"+dock, meta, size, sum)
				if err != nil || up.Held != 0 {
					t.Fatalf("%s begin: %+v %v, want a fresh upload at 0", dock, up, err)
				}
				if _, err := fs.Write(dock, meta.ID, 0, data); err != nil {
					t.Fatalf("%s chunk: %v", dock, err)
				}
				s, err := fs.Finish(dock, meta.ID, size, sum)
				if err != nil {
					t.Fatalf("%s finish: %v", dock, err)
				}
				if s.SHA256 != sum || s.Dock != dock {
					t.Fatalf("%s answered with sha256 %.12s of %s, want its own %.12s", dock, s.SHA256, s.Dock, sum)
				}
				return s
			}
			order := []struct {
				dock string
				data []byte
				sum  string
			}{{"dock-A", real, realSum}, {"dock-B", forged, forgedSum}}
			if tt.same {
				order[1].data, order[1].sum = real, realSum
			}
			if tt.first == "dock-B" {
				order[0], order[1] = order[1], order[0]
			}
			filed := map[string]Stored{}
			for _, o := range order {
				filed[o.dock] = upload(o.dock, o.data, o.sum)
			}
			wantB := forgedSum
			if tt.same {
				wantB = realSum
			}
			for dock, want := range map[string]string{"dock-A": realSum, "dock-B": wantB} {
				if s, ok, err := fs.Filed(dock, meta.ID); err != nil || !ok || s.SHA256 != want || s.Dock != dock {
					t.Fatalf("Filed(%s): %+v %v %v, want its own %.12s", dock, s, ok, err, want)
				}
				b, err := os.ReadFile(filed[dock].Path)
				if h := sha256.Sum256(b); err != nil || hex.EncodeToString(h[:]) != want {
					t.Fatalf("%s's filed bytes hash %x (%v), want %.12s", dock, h, err, want)
				}
				// A repeated end gets the dock's own receipt again.
				again, err := fs.Finish(dock, meta.ID, size, want)
				if err != nil || again.SHA256 != want || again.Dock != dock || !again.Stored.Equal(filed[dock].Stored) {
					t.Fatalf("%s repeated end: %+v %v", dock, again, err)
				}
			}
			if s, ok, err := fs.Filed("dock-C", meta.ID); err != nil || ok {
				t.Fatalf("Filed(dock-C): %+v %v %v, want nothing", s, ok, err)
			}
			list, err := fs.List()
			if err != nil || len(list) != 2 {
				t.Fatalf("list: %d filed (%v), want both docks' recordings", len(list), err)
			}
			// The office's lookup by id alone says when docks disagree, and otherwise
			// gives the first filing.
			s, ok, err := fs.Lookup(meta.ID)
			switch {
			case tt.same && (err != nil || !ok || s.SHA256 != realSum || s.Dock != tt.first):
				t.Fatalf("Lookup of a recording two docks filed alike: %+v %v %v, want %s's", s, ok, err, tt.first)
			case !tt.same && err == nil:
				t.Fatalf("Lookup of a recording two docks filed differently: %+v %v, want an error", s, ok)
			}
		})
	}
}

// rig is a broker, a receiver over a FileStore, and docks' MQTT sessions, all in process.
type rig struct {
	ctx   context.Context
	store FileStore
	rcv   *Receiver
	url   string
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	b, err := broker.Start("127.0.0.1:0", quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r := &rig{ctx: ctx, store: FileStore{Dir: t.TempDir()}, url: b.URL()}
	r.rcv, err = Start(ctx, Options{Broker: r.url, ClientID: "central-test", Store: r.store, ManualGrants: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.rcv.Close)
	return r
}

// dockSession is one dock's side of the protocol, driven by hand.
type dockSession struct {
	t    *testing.T
	r    *rig
	name string
	conn *mqttconn.Conn
}

func (r *rig) dock(t *testing.T, name string) *dockSession {
	t.Helper()
	c, err := mqttconn.Dial(r.ctx, mqttconn.Options{Broker: r.url, ClientID: "dock-" + name, CleanSession: true,
		Subscriptions: map[string]byte{wire.CentralRoot + "/" + name + "/#": 1}}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &dockSession{t: t, r: r, name: name, conn: c}
}

func (d *dockSession) send(leaf string, v any) {
	d.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			d.t.Fatal(err)
		}
	}
	if err := d.conn.Publish(d.r.ctx, wire.DockTopic(d.name, leaf), 1, false, b); err != nil {
		d.t.Fatal(err)
	}
}

// answer waits for central's next ack or receipt on recording id.
func (d *dockSession) answer(id string) (*wire.AckMsg, *wire.ReceiptMsg) {
	d.t.Helper()
	for {
		select {
		case <-d.r.ctx.Done():
			d.t.Fatalf("%s: no answer from central on %s", d.name, id)
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

// upload sends a whole recording as the dock's sender does: begin, chunks from central's
// offset, end; and returns the receipt.
func (d *dockSession) upload(meta wire.RecordingMeta, data []byte, sum string) wire.ReceiptMsg {
	d.t.Helper()
	d.send(wire.TopicBegin, wire.BeginMsg{Transfer: "t-" + d.name, Recording: meta, Size: int64(len(data)), SHA256: sum})
	a, r := d.answer(meta.ID)
	if r != nil {
		d.t.Fatalf("%s: begin of %s answered with a receipt %+v, want an ack", d.name, meta.ID, *r)
	}
	if a.Error != "" || a.Offset != 0 {
		d.t.Fatalf("%s: begin of %s answered %+v, want offset 0", d.name, meta.ID, *a)
	}
	for off := 0; off < len(data); off += 32 << 10 {
		d.send(wire.TopicChunk, wire.AppendChunk(nil, wire.Chunk{Recording: meta.ID, Offset: int64(off), Data: data[off:min(off+32<<10, len(data))]}))
	}
	for held := int64(0); held < int64(len(data)); {
		a, r := d.answer(meta.ID)
		if r != nil || a.Error != "" {
			d.t.Fatalf("%s: chunk of %s answered %+v %+v", d.name, meta.ID, a, r)
		}
		held = max(held, a.Offset)
	}
	d.send(wire.TopicEnd, wire.EndMsg{Transfer: "t-" + d.name, Recording: meta.ID, Size: int64(len(data)), SHA256: sum})
	for {
		if _, r := d.answer(meta.ID); r != nil {
			return *r
		}
	}
}

// Over MQTT: each dock's begin of a recording it filed is answered with its own receipt,
// never another dock's; a dock whose recording id another dock filed first uploads its
// own; a 0-byte recording goes through like any other.
func TestReceiverAnswersEachDockWithItsOwnRecord(t *testing.T) {
	r := newRig(t)
	a, b := r.dock(t, "dock-A"), r.dock(t, "dock-B")
	meta := wire.RecordingMeta{ID: "CAM-1_VID_0001.mp4", Device: "CAM-1"}
	real, realSum := footage(100<<10, 21)
	forged, forgedSum := footage(100<<10, 22)

	if rc := b.upload(meta, forged, forgedSum); rc.Error != "" || rc.SHA256 != forgedSum {
		t.Fatalf("dock-B's receipt: %+v", rc)
	}
	if rc := a.upload(meta, real, realSum); rc.Error != "" || rc.SHA256 != realSum {
		t.Fatalf("dock-A's receipt: %+v, want its own hash %.12s", rc, realSum)
	}
	for _, d := range []struct {
		s   *dockSession
		sum string
		n   int
	}{{a, realSum, len(real)}, {b, forgedSum, len(forged)}} {
		// A begin again (the dock restarted before it applied the receipt): the receipt again.
		d.s.send(wire.TopicBegin, wire.BeginMsg{Transfer: "t2", Recording: meta, Size: int64(d.n), SHA256: d.sum})
		if ack, rc := d.s.answer(meta.ID); rc == nil || rc.SHA256 != d.sum || rc.Error != "" {
			t.Fatalf("%s: begin of a filed recording answered %+v %+v, want its receipt %.12s", d.s.name, ack, rc, d.sum)
		}
		d.s.send(wire.TopicEnd, wire.EndMsg{Transfer: "t2", Recording: meta.ID, Size: int64(d.n), SHA256: d.sum})
		if ack, rc := d.s.answer(meta.ID); rc == nil || rc.SHA256 != d.sum || rc.Error != "" {
			t.Fatalf("%s: end of a filed recording answered %+v %+v, want its receipt %.12s", d.s.name, ack, rc, d.sum)
		}
	}

	empty := sha256.Sum256(nil)
	zero := wire.RecordingMeta{ID: "CAM-1_VID_0002.mp4", Device: "CAM-1"}
	if rc := a.upload(zero, nil, hex.EncodeToString(empty[:])); rc.Error != "" || rc.Size != 0 || rc.SHA256 != hex.EncodeToString(empty[:]) {
		t.Fatalf("0-byte recording's receipt: %+v", rc)
	}
}

// A store written before recordings were keyed by dock (index/<id>, recordings/<device>/<id>)
// still answers the dock that filed each recording, and only that dock.
func TestLegacyFilingsAnswerTheirOwnDock(t *testing.T) {
	const size = 4096
	_, sum := footage(size, 31)
	dir := t.TempDir()
	fs := FileStore{Dir: dir}
	meta := wire.RecordingMeta{ID: "CAM-3_VID_0003.mp4", Device: "CAM-3"}
	old := Stored{Meta: meta, Dock: "dock-A", Size: size, SHA256: sum, Stored: time.Now().UTC().Truncate(time.Second)}
	js, _ := json.Marshal(old)
	for path, b := range map[string][]byte{
		"recordings/CAM-3/" + meta.ID:           make([]byte, size),
		"recordings/CAM-3/" + meta.ID + ".json": js,
		"index/" + meta.ID:                      []byte("CAM-3"),
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), b, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	if s, ok, err := fs.Filed("dock-A", meta.ID); err != nil || !ok || s.SHA256 != sum || !s.Stored.Equal(old.Stored) {
		t.Fatalf("Filed(dock-A): %+v %v %v", s, ok, err)
	}
	if s, ok, err := fs.Filed("dock-B", meta.ID); err != nil || ok {
		t.Fatalf("Filed(dock-B): %+v %v %v, want nothing: dock-A filed it", s, ok, err)
	}
	if s, ok, err := fs.Lookup(meta.ID); err != nil || !ok || s.Dock != "dock-A" {
		t.Fatalf("Lookup: %+v %v %v", s, ok, err)
	}
	if list, err := fs.List(); err != nil || len(list) != 1 {
		t.Fatalf("List: %+v %v", list, err)
	}
}
