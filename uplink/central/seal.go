package central

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"dock/uplink/wire"
)

// ConfigTTL is how long a pushed config without its own Expires stays acceptable to the
// dock: a dock offline for longer refuses the retained config and central pushes again.
const ConfigTTL = 7 * 24 * time.Hour

// lastSeq is the last Seq central gave out, to any dock.
var lastSeq atomic.Uint64

// nextSeq is the Seq of the next message to a dock: unix nanoseconds now, or one more
// than the last given out if the clock has not moved past it, so it increases for every
// dock within this process, and across restarts as long as the clock does not go back.
// Several receivers sharing the docks (Options.Share) each keep their own: a grant or
// command from one may then fall behind one just sent by another, and is refused.
func nextSeq() uint64 {
	for {
		last := lastSeq.Load()
		next := max(uint64(time.Now().UnixNano()), last+1)
		if lastSeq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// encode is the payload of v, a message for dock: a message of central's own (grant,
// ack, receipt, config, command, ledger-ack) is sealed for dock with Options.SigningKey (DESIGN.md,
// invariant 8). Without a key it goes unsigned, and every dock refuses it.
func (r *Receiver) encode(dock string, v any) ([]byte, error) {
	var m wire.Sealed
	switch x := v.(type) {
	case wire.GrantMsg:
		m = &x
	case wire.AckMsg:
		m = &x
	case wire.ReceiptMsg:
		m = &x
	case wire.ConfigMsg:
		m = &x
	case wire.CommandMsg:
		m = &x
	case wire.LedgerAckMsg:
		m = &x
	default:
		return json.Marshal(v)
	}
	if r.o.SigningKey != nil {
		wire.SealFor(m, dock, nextSeq(), r.o.SigningKey)
	}
	return json.Marshal(m)
}
