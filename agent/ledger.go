package agent

import (
	"context"
	"fmt"
	"time"

	"dock/health"
	"dock/queue"
)

// maxUnwritten bounds the ledger entries held in memory while the store refuses writes;
// past it they are counted, and the count is itself written once the store is back.
const maxUnwritten = 10_000

// codeLedgerUnwritable is the dock's fault while ledger entries wait to be written.
const codeLedgerUnwritable health.Code = "ledger-unwritable"

// note appends ev to the ledger. An entry the store refuses is kept and written later by
// retryNotes, and the dock raises ledger-unwritable: no step of custody leaves the ledger
// silently. The write's error is returned, so a caller about to take a custody step that
// must be recorded first (deleting a camera's copy) can refrain from it.
func (a *Agent) note(ev queue.Event) error {
	err := a.record(ev)
	if err == nil {
		return nil
	}
	ev.Detail = fmt.Sprintf("written late, happened at %s: %s", a.now().Format(time.RFC3339Nano), ev.Detail)
	a.notesMu.Lock()
	if len(a.unwritten) < maxUnwritten {
		a.unwritten = append(a.unwritten, ev)
	} else {
		a.notesLost++
	}
	held := len(a.unwritten)
	a.notesMu.Unlock()
	a.log.Error("ledger entry not written, held for retry", "kind", ev.Kind, "recording", ev.Recording, "detail", ev.Detail, "held", held, "err", err)
	a.raise(-1, a.cfg.Dock, health.Verdict{Code: codeLedgerUnwritable, Detail: fmt.Sprintf("the store refused a ledger entry (%v); %d held for retry", err, held)})
	return fmt.Errorf("ledger: %w", err)
}

// retryNotes writes the held ledger entries, in order, every period until ctx ends, and
// clears ledger-unwritable once none is left.
func (a *Agent) retryNotes(ctx context.Context, period time.Duration) {
	t, ticks := a.timeSource().NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		a.flushNotes()
	}
}

// flushNotes writes what note held back and reports how many entries are still held.
func (a *Agent) flushNotes() int {
	a.notesMu.Lock()
	defer a.notesMu.Unlock()
	if len(a.unwritten) == 0 && a.notesLost == 0 {
		return 0
	}
	for len(a.unwritten) > 0 {
		if err := a.record(a.unwritten[0]); err != nil {
			return len(a.unwritten)
		}
		a.unwritten = a.unwritten[1:]
	}
	if a.notesLost > 0 {
		if err := a.record(queue.Event{Kind: queue.EvInput, Detail: fmt.Sprintf("%d ledger entries were lost: more than %d waited while the store refused writes", a.notesLost, maxUnwritten)}); err != nil {
			return 1
		}
		a.notesLost = 0
	}
	a.unwritten = nil
	a.clearCondition(health.FaultID(a.cfg.Dock, codeLedgerUnwritable), "dock: held ledger entries written")
	return 0
}
