package mqttconn

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"dock/uplink/mqtttest"
)

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Central's messages reach the consumer in the order the broker delivered them, none is
// dropped when the consumer falls behind its inbox, and a consumer that is not reading
// never stops the connection: it still publishes and gets the broker's acknowledgement.
// (paho with SetOrderMatters(false) hands each message to its own goroutine, so a pause
// and the resume after it could arrive reversed.)
func TestInboxKeepsOrderAndDropsNothing(t *testing.T) {
	const n = 2000
	for _, tc := range []struct {
		name  string
		inbox int
		late  bool // the consumer starts reading only after every message was published
	}{
		{"consumer keeps up", 4096, false},
		{"consumer far behind a small inbox", 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// mosquitto drops QoS 1 messages queued for a client beyond 1000 by default:
			// this burst outruns the subscriber's acknowledgements by design.
			b := mqtttest.Start(t, "max_queued_messages 100000\n")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rx, err := Dial(ctx, Options{Broker: b.URL, ClientID: "rx", CleanSession: true, Inbox: tc.inbox,
				Subscriptions: map[string]byte{"central/v1/d1/#": 1}}, testLog())
			if err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			tx, err := Dial(ctx, Options{Broker: b.URL, ClientID: "tx", CleanSession: true}, testLog())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Close()

			got := make(chan []int, 1)
			start := make(chan struct{})
			go func() {
				var seq []int
				if tc.late {
					<-start
				}
				for len(seq) < n {
					select {
					case m := <-rx.Inbox():
						i, err := strconv.Atoi(string(m.Payload))
						if err != nil {
							i = -1
						}
						seq = append(seq, i)
					case <-time.After(5 * time.Second):
						got <- seq
						return
					}
				}
				got <- seq
			}()
			// Alternate two topics, as grants and commands interleave.
			var last <-chan struct{}
			for i := 0; i < n; i++ {
				topic := "central/v1/d1/grant"
				if i%2 == 1 {
					topic = "central/v1/d1/command"
				}
				if last, err = tx.PublishAsync(topic, 1, []byte(strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-last:
			case <-ctx.Done():
				t.Fatal("the broker did not take the burst")
			}
			if tc.late {
				// The consumer reads nothing yet: the connection must still work both ways.
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				err := rx.Publish(pctx, "dock/v1/d1/status", 1, false, []byte("ping"))
				pcancel()
				if err != nil {
					t.Fatalf("publish while the inbox is backed up: %v", err)
				}
				time.Sleep(500 * time.Millisecond) // let the whole burst arrive while nobody reads
				close(start)
			}
			seq := <-got
			if len(seq) != n {
				t.Errorf("received %d of %d messages", len(seq), n)
			}
			for i, v := range seq {
				if v != i {
					t.Fatalf("message %d is %d: %s", i, v, around(seq, i))
				}
			}
		})
	}
}

func around(seq []int, i int) string {
	lo, hi := max(0, i-5), min(len(seq), i+6)
	return fmt.Sprint(seq[lo:hi])
}
