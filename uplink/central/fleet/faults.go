package fleet

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// FaultState is where a fault is in central's lifecycle: maintenance takes it from new to
// cleared. The dock's own lifecycle (health.NextFault) has no "returned": that step is the
// office's alone and sends the dock nothing.
type FaultState string

const (
	FaultNew          FaultState = "new"
	FaultAcknowledged FaultState = "acknowledged"
	FaultInRepair     FaultState = "sent-for-repair"
	FaultReturned     FaultState = "returned"
	FaultCleared      FaultState = "cleared"
)

// FaultCommand is the dock command (wire.CommandMsg.Kind) that carries a step to the dock,
// "" for a step only central keeps, and the dock's ledger event that confirms it.
func FaultCommand(step FaultState) (kind, confirmedBy string) {
	switch step {
	case FaultAcknowledged:
		return "ack-fault", "acknowledge"
	case FaultInRepair:
		return "repair-fault", "send-for-repair"
	case FaultCleared:
		return "clear-fault", "clear"
	}
	return "", ""
}

// NextFaultState is central's one transition function: a step may be repeated (sent to
// the dock again), never taken back. Clearing is allowed from any open state, as on the
// dock.
func NextFaultState(s, step FaultState) (FaultState, error) {
	ok := false
	switch step {
	case FaultAcknowledged:
		ok = s == FaultNew || s == FaultAcknowledged
	case FaultInRepair:
		ok = s == FaultAcknowledged || s == FaultInRepair
	case FaultReturned:
		ok = s == FaultInRepair || s == FaultReturned
	case FaultCleared:
		ok = s != FaultCleared
	}
	if !ok {
		return s, fmt.Errorf("fault: %s not allowed while %s", step, s)
	}
	return step, nil
}

// ErrFaultStep means a step is not allowed in the fault's state or lacks what it needs.
var ErrFaultStep = errors.New("fault step refused")

// FaultStep records a person's step on dock's fault (and the audit line saying who), in
// one transaction, and returns the command kind to send the dock ("" for none). A repair
// needs a ticket and a shop.
func (d *DB) FaultStep(dock, fault string, step FaultState, by, ticket, shop string) (command string, err error) {
	if step == FaultInRepair && (strings.TrimSpace(ticket) == "" || strings.TrimSpace(shop) == "") {
		return "", fmt.Errorf("%w: sent for repair needs a ticket and a shop", ErrFaultStep)
	}
	now := ts(d.now())
	kind, _ := FaultCommand(step)
	err = d.tx(func(t *sql.Tx) error {
		var cur FaultState
		if err := t.QueryRow(`SELECT state FROM faults WHERE dock = ? AND fault = ?`, dock, fault).Scan(&cur); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("fault %s of %s: %w", fault, dock, ErrNotFound)
		} else if err != nil {
			return err
		}
		if _, err := NextFaultState(cur, step); err != nil {
			return fmt.Errorf("%w: %v", ErrFaultStep, err)
		}
		if _, err := t.Exec(`UPDATE faults SET state = ?, ticket = CASE WHEN ? = '' THEN ticket ELSE ? END,
			shop = CASE WHEN ? = '' THEN shop ELSE ? END WHERE dock = ? AND fault = ?`,
			step, ticket, ticket, shop, shop, dock, fault); err != nil {
			return err
		}
		if _, err := t.Exec(`INSERT INTO fault_steps (dock, fault, step, by, at, ticket, shop, command) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			dock, fault, step, by, now, ticket, shop, kind); err != nil {
			return err
		}
		detail := string(step)
		if ticket != "" {
			detail += fmt.Sprintf(" ticket %q shop %q", ticket, shop)
		}
		return audit(t, now, by, "fault-"+string(step), dock+"/"+fault, detail)
	})
	return kind, err
}

// confirmStep marks the oldest unconfirmed step of a fault that the dock's ledger entry
// e says it applied (detail "<fault>: <event> by \"<who>\"", agent.faultEvent).
func confirmStep(t *sql.Tx, dock string, e ledgerEntry) error {
	head, _, ok := strings.Cut(e.Detail, " by ")
	if !ok {
		return nil
	}
	i := strings.LastIndex(head, ": ")
	if i < 0 {
		return nil
	}
	fault, event := head[:i], head[i+2:]
	var step FaultState
	for _, s := range []FaultState{FaultAcknowledged, FaultInRepair, FaultCleared} {
		if _, ev := FaultCommand(s); ev == event {
			step = s
		}
	}
	if step == "" {
		return nil
	}
	if _, err := t.Exec(`UPDATE fault_steps SET confirmed_at = ? WHERE id = (SELECT min(id) FROM fault_steps
		WHERE dock = ? AND fault = ? AND step = ? AND confirmed_at = '')`, ts(e.Time), dock, fault, step); err != nil {
		return err
	}
	_, err := t.Exec(`UPDATE faults SET dock_state = ? WHERE dock = ? AND fault = ?`, event, dock, fault)
	return err
}
