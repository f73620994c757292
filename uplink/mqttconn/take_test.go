package mqttconn

import (
	"fmt"
	"strings"
	"testing"
)

// message is a received message as paho hands it to take.
type message struct {
	topic   string
	payload []byte
}

func (m message) Duplicate() bool   { return false }
func (m message) Qos() byte         { return 1 }
func (m message) Retained() bool    { return false }
func (m message) Topic() string     { return m.topic }
func (m message) MessageID() uint16 { return 0 }
func (m message) Payload() []byte   { return m.payload }
func (m message) Ack()              {}

// A consumer far behind loses what is not essential once the backlog is full, never an
// essential message (the dock's receipts and acks), however many arrive.
func TestTakeKeepsEssentialMessagesPastTheBacklog(t *testing.T) {
	c := &Conn{log: testLog(), inbox: make(chan Message, 4), backlog: 1000,
		essential: func(topic string) bool {
			return strings.HasSuffix(topic, "/receipt") || strings.HasSuffix(topic, "/ack")
		},
		wake: make(chan struct{}, 1), closed: make(chan struct{})}
	const n = 500
	for i := range n {
		for _, leaf := range []string{"receipt", "ack", "telemetry"} {
			c.take(message{topic: "central/v1/d1/" + leaf, payload: []byte(fmt.Sprintf("%s %04d %s", leaf, i, strings.Repeat(".", 80)))})
		}
	}
	count := map[string]int{}
	var order []string
	for len(c.inbox) > 0 {
		m := <-c.inbox
		count[m.Topic[strings.LastIndex(m.Topic, "/")+1:]]++
		order = append(order, strings.Join(strings.Fields(string(m.Payload))[:2], " "))
	}
	for _, m := range c.waiting {
		count[m.Topic[strings.LastIndex(m.Topic, "/")+1:]]++
		order = append(order, strings.Join(strings.Fields(string(m.Payload))[:2], " "))
	}
	for _, leaf := range []string{"receipt", "ack"} {
		if count[leaf] != n {
			t.Errorf("%d of %d %s messages kept: an essential message was dropped", count[leaf], n, leaf)
		}
	}
	if count["telemetry"] >= n {
		t.Errorf("all %d telemetry messages kept past a backlog of %d bytes", count["telemetry"], c.backlog)
	}
	// In the order taken: receipt 0000, ack 0000, ..., receipt 0001, ...
	last := map[string]string{}
	for _, o := range order {
		leaf, _, _ := strings.Cut(o, " ")
		if o <= last[leaf] {
			t.Fatalf("%q handed over after %q", o, last[leaf])
		}
		last[leaf] = o
	}
}
