package central

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"dock/uplink/wire"
)

// The shipped broker config refuses a message past the largest a dock may legally send: a
// chunk frame at the largest chunk size a grant allows (wire.MaxChunk) with the longest
// recording id (maxIDLen), plus a little. Without it a dock could publish 256 MB messages
// (MQTT's own bound) for the broker and central to take whole.
func TestShippedBrokerLimitsMessageSize(t *testing.T) {
	const conf = "../../build/mosquitto/mosquitto.conf"
	f, err := os.Open(conf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	limit := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "message_size_limit" {
			if limit, err = strconv.Atoi(fields[1]); err != nil {
				t.Fatalf("%s: message_size_limit %q: %v", conf, fields[1], err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	largest := len(wire.AppendChunk(nil, wire.Chunk{Recording: strings.Repeat("r", maxIDLen), Offset: 1 << 40, Data: make([]byte, wire.MaxChunk)}))
	switch {
	case limit < 0:
		t.Fatalf("%s sets no message_size_limit: a dock can publish messages of any size (largest legal: %d bytes)", conf, largest)
	case limit < largest:
		t.Fatalf("%s: message_size_limit %d is below the largest legal chunk frame, %d bytes", conf, limit, largest)
	case limit > largest+4096:
		t.Fatalf("%s: message_size_limit %d is far above the largest legal chunk frame, %d bytes", conf, limit, largest)
	}
}
