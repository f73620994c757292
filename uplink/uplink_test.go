package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"dock/queue"
	"dock/uplink/central"
	"dock/uplink/mqttconn"
	"dock/uplink/mqtttest"
	"dock/uplink/wire"
)

// A burst of central's grants, alternating pause and resume mid-recording, leaves the sender
// in the state of the last one published: paused, it sends nothing more and has released
// its lease; granted, the recording is verified. Messages handled out of order, or a grant
// dropped on a full channel, end it in another state. A pause is no failure of the
// recording: it is never reported stuck however often central pauses it.
// The grants of TestGrantBurstEndsInLastState.
const grantChunk, grantWindow, grantRate = 64 << 10, 4, 1 << 20

func TestGrantBurstEndsInLastState(t *testing.T) {
	const size, chunk, window, rate, n = 8 << 20, grantChunk, grantWindow, grantRate, 200
	for _, tc := range []struct {
		name      string
		endPaused bool
	}{
		{"ends paused", true},
		{"ends granted", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			b := mqtttest.Start(t, "")
			store := openStore(t)
			rec := spool(t, store, "CAM-1_burst.mp4", time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), size)
			rcv := startCentral(t, ctx, b, nil, central.Options{ManualGrants: true})
			s := NewSender(dialDock(t, ctx, b), store, testLog())
			s.StuckAfter = 2
			s.OnStuck = func(id string, attempts int, err error) {
				t.Errorf("recording %s reported stuck after %d attempts (%v): paused by central is no failure", id, attempts, err)
			}
			runSender(t, ctx, s)
			office := officeConn(t, ctx, b)

			grant := func(id string, paused bool) {
				t.Helper()
				g := wire.GrantMsg{ID: id, ChunkSize: chunk, Window: window, RateBytes: rate, Paused: paused}
				if err := rcv.Grant(ctx, dockName, g); err != nil {
					t.Fatal(err)
				}
			}
			grant("g-start", false)
			waitFor(t, ctx, "transfer under way", func() bool { return rcv.Progress(dockName, rec.ID) >= chunk*window })
			if !tc.endPaused {
				sendBurst(t, ctx, office, n, false)
				// 8 MiB at the granted 1 MiB/s.
				bound, bcancel := context.WithTimeout(ctx, 25*time.Second)
				defer bcancel()
				waitFor(t, bound, "recording verified after the last grant resumed it", func() bool { return settled(state(store, rec.ID)) })
				return
			}
			// A reordering shows only when it reaches the burst's last grants: try a few.
			for round := range 4 {
				sendBurst(t, ctx, office, n, true)
				time.Sleep(time.Second) // the burst is applied, chunks in flight land
				before := rcv.BytesReceived()
				time.Sleep(time.Second) // 1 MiB at the granted rate
				if sent := rcv.BytesReceived() - before; sent != 0 {
					t.Fatalf("round %d: dock sent %d bytes after central's last grant paused it", round, sent)
				}
				if st := state(store, rec.ID); st != queue.Spooled {
					t.Fatalf("round %d: recording is %s after central's last grant paused it, want %s", round, st, queue.Spooled)
				}
			}
		})
	}
}

// sendBurst publishes n grants at once, alternating pause and resume, the last one paused
// if endPaused.
func sendBurst(t *testing.T, ctx context.Context, office *mqttconn.Conn, n int, endPaused bool) {
	t.Helper()
	var grants [][]byte
	base := uint64(time.Now().UnixNano()) // above central's own grants' Seq so far
	for i := range n {
		paused := (n-1-i)%2 == 0 // ..., resume, pause
		if !endPaused {
			paused = !paused // ..., pause, resume
		}
		p, _ := json.Marshal(sealed(&wire.GrantMsg{ID: fmt.Sprintf("g-%03d", i), ChunkSize: grantChunk, Window: grantWindow, RateBytes: grantRate, Paused: paused}, base+uint64(i)))
		grants = append(grants, p)
	}
	burst(t, ctx, office, wire.TopicGrant, grants)
}

// Central's commands and configs reach the agent all, in the order central sent them,
// even when they come in a burst (central publishing without waiting for each, or the
// broker flushing what it queued while the dock was offline) and the agent reads none
// until the whole burst has arrived: an ack-fault applied after the repair-fault that
// followed it, or an older config after a newer one, is wrong.
func TestCentralMessagesKeepOrder(t *testing.T) {
	const n = 300
	for _, kind := range []struct {
		name string
		leaf string
		body func(i int) any
		recv func(ctx context.Context, u *Uplink) <-chan int
	}{
		{"commands", wire.TopicCommand,
			func(i int) any {
				return sealed(&wire.CommandMsg{Kind: []string{"ack-fault", "repair-fault"}[i%2], Fault: fmt.Sprintf("CAM-%d/battery", i)}, uint64(i+1))
			},
			func(ctx context.Context, u *Uplink) <-chan int {
				return relay(ctx, u.Commands(), func(c wire.CommandMsg) int {
					var i int
					if _, err := fmt.Sscanf(c.Fault, "CAM-%d/battery", &i); err != nil || c.Kind != []string{"ack-fault", "repair-fault"}[i%2] {
						i = -1
					}
					return i
				})
			}},
		{"configs", wire.TopicConfig,
			func(i int) any { return sealed(&wire.ConfigMsg{Version: int64(i), Team: "T1"}, uint64(i+1)) },
			func(ctx context.Context, u *Uplink) <-chan int {
				return relay(ctx, u.Configs(), func(c wire.ConfigMsg) int { return int(c.Version) })
			}},
	} {
		for _, offline := range []bool{false, true} {
			name := kind.name + "/burst"
			if offline {
				name = kind.name + "/queued while offline"
			}
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				b := mqtttest.Start(t, "")
				u := dialDock(t, ctx, b) // the persistent session exists from here on
				if offline {
					u.Close()
				}
				office := officeConn(t, ctx, b)
				var payloads [][]byte
				for i := range n {
					p, _ := json.Marshal(kind.body(i))
					payloads = append(payloads, p)
				}
				burst(t, ctx, office, kind.leaf, payloads)
				if offline {
					u = dialDock(t, ctx, b)
				}
				time.Sleep(500 * time.Millisecond) // all of it at the dock, nothing read yet
				got := kind.recv(ctx, u)
				for want := range n {
					select {
					case i := <-got:
						if i != want {
							t.Fatalf("message %d from central arrived as number %d", want, i)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("received %d of %d messages", want, n)
					}
				}
			})
		}
	}
}

// relay hands what in delivers, numbered by number, to the returned channel until ctx ends.
func relay[T any](ctx context.Context, in <-chan T, number func(T) int) <-chan int {
	out := make(chan int)
	go func() {
		for {
			select {
			case v := <-in:
				select {
				case out <- number(v):
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// officeConn is a bare MQTT client for central's side, to publish in bursts.
func officeConn(t *testing.T, ctx context.Context, b *mqtttest.Broker) *mqttconn.Conn {
	t.Helper()
	c, err := mqttconn.Dial(ctx, mqttconn.Options{Broker: b.URL, ClientID: "office-burst", CleanSession: true}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// burst publishes payloads to the dock's central topic leaf, QoS 1, without waiting for
// each acknowledgement, and returns once the broker took the last.
func burst(t *testing.T, ctx context.Context, c *mqttconn.Conn, leaf string, payloads [][]byte) {
	t.Helper()
	var last <-chan struct{}
	for _, p := range payloads {
		var err error
		if last, err = c.PublishAsync(wire.CentralTopic(dockName, leaf), 1, p); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-last:
	case <-ctx.Done():
		t.Fatal("the broker did not take the burst")
	}
}
