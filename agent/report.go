package agent

import (
	"context"
	"encoding/json"
	"time"

	"dock/queue"
	"dock/uplink/wire"
)

// reportLoop publishes telemetry when due and exports new ledger entries to central.
func (a *Agent) reportLoop(ctx context.Context) {
	var exported uint64
	_, _ = a.store.GetDoc("export", "ledger", &exported)
	t, ticks := a.timeSource().NewTicker(time.Second)
	defer t.Stop()
	var last time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if now := a.now(); now.Sub(last) >= a.Settings().TelemetryEvery {
			if err := a.up.Telemetry(pctx, a.Telemetry()); err != nil {
				a.log.Debug("telemetry not sent", "err", err)
			} else {
				last = now
			}
		}
		exported = a.exportLedger(pctx, exported)
		cancel()
		for taken := false; !taken; { // central's acknowledgements of the ledger so far
			select {
			case ack := <-a.up.LedgerAcks():
				a.takeLedgerAck(ack)
			default:
				taken = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
	}
}

// Ledger batches: at most ledgerBatchEntries entries and ledgerBatchBytes of JSON, well
// below the broker's message size limit (mosquitto's message_size_limit 1049600 drops a
// larger message and still acknowledges it at QoS 1: the batch would be lost unseen).
const (
	ledgerBatchEntries = 200
	ledgerBatchBytes   = 512 << 10
)

// exportLedger sends ledger entries after seq to central in batches, each entry as stored
// (central recomputes its hash), and returns the last one central's broker took.
func (a *Agent) exportLedger(ctx context.Context, seq uint64) uint64 {
	for seq < a.store.LedgerHead() {
		raw, last, err := a.store.LedgerBatch(seq+1, ledgerBatchEntries, ledgerBatchBytes)
		if err != nil || len(raw) == 0 {
			return seq
		}
		msg := wire.LedgerMsg{}
		for _, e := range raw {
			msg.Entries = append(msg.Entries, json.RawMessage(e))
		}
		if err := a.up.Ledger(ctx, msg); err != nil {
			return seq
		}
		seq = last
		if err := a.store.PutDoc("export", "ledger", seq); err != nil {
			return seq
		}
	}
	return seq
}

// takeLedgerAck keeps the head central acknowledged as the ledger's anchor (doc
// ledger/anchor), if it is past the one kept: verification then checks the local entry at
// that seq has central's hash. An error means central found the exported ledger does not
// chain to what it holds: logged here (not recorded in the ledger, whose next export would
// break again and record again); the head it names is still central's, and kept.
func (a *Agent) takeLedgerAck(ack wire.LedgerAckMsg) {
	if ack.Error != "" {
		a.log.Error("ledger: central reports a ledger break", "err", ack.Error, "central_head", ack.HeadSeq)
	}
	if ack.HeadSeq == 0 {
		return
	}
	if _, err := a.store.SetAnchor(queue.Anchor{Seq: ack.HeadSeq, Hash: ack.HeadHash, Time: a.now()}); err != nil {
		a.log.Warn("ledger: anchor not kept", "seq", ack.HeadSeq, "err", err)
	}
}
