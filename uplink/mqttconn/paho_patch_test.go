package mqttconn

import (
	"bytes"
	"net"
	"runtime"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// allocated returns the bytes the heap handed out while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The go.mod replaces paho with the copy under uplink/tempfork, patched so that a chunk's
// payload is not copied on its way out or in. These fail if the replacement is dropped.
func TestPahoDoesNotCopyPayloads(t *testing.T) {
	const size = 1 << 20
	payload := bytes.Repeat([]byte{0xA5}, size)
	newPacket := func() *packets.PublishPacket {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Qos, p.MessageID, p.Payload = "dock/d1/chunk", 1, 7, payload
		return p
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The reader allocates nothing while the write is measured: its buffer is made first.
	buf := make([]byte, size+64)
	received := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- nil
			return
		}
		defer c.Close()
		n := 0
		for n < len(buf) {
			m, err := c.Read(buf[n:])
			n += m
			if err != nil {
				break
			}
		}
		received <- buf[:n]
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := newPacket()
	var werr error
	sent := allocated(func() { werr = p.Write(c) })
	if werr != nil {
		t.Fatal(werr)
	}
	c.Close()
	wire := <-received
	if sent >= size/2 {
		t.Errorf("writing a %d-byte publish allocated %d bytes: the payload was copied", size, sent)
	}

	var got packets.ControlPacket
	var rerr error
	read := allocated(func() { got, rerr = packets.ReadPacket(bytes.NewReader(wire)) })
	if rerr != nil {
		t.Fatal(rerr)
	}
	pub, ok := got.(*packets.PublishPacket)
	if !ok || pub.TopicName != p.TopicName || pub.MessageID != 7 || !bytes.Equal(pub.Payload, payload) {
		t.Fatalf("the publish did not survive the round trip: %v", got)
	}
	if read >= size*3/2 {
		t.Errorf("reading a %d-byte publish allocated %d bytes: the payload was copied", size, read)
	}
}
