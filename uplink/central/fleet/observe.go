package fleet

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"dock/uplink/central"
	"dock/uplink/wire"
)

// DB is the receiver's Observer: what docks send becomes fleet state, each message in one
// transaction. Whatever a dock says is checked (ids) and bounded (texts, bays) first.
var _ central.Observer = (*DB)(nil)

// deviceID is what a device serial or officer id may be (the dock's own rule).
var deviceID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// keptAlerts is how many alert messages of one fault are kept.
const keptAlerts = 100

// The bounds of what one dock (or a device it names) adds to the database: a dock is
// hostile until shown otherwise, and a loop of ever new ids or times must not fill it.
var (
	keptHealthSamples = 1000 // health samples of a device kept, the newest (the page plots 200)
	maxFaultsPerDock  = 1000 // faults of a dock; the oldest cleared one makes room, none cleared: refused
	maxCamerasPerDock = 1000 // cameras last seen at a dock; past it a new one is not kept
)

// maxBays bounds the bays of one telemetry message kept.
const maxBays = 64

// DockStatus implements central.Observer: the dock's presence and since when.
func (d *DB) DockStatus(dock string, s wire.StatusMsg) error {
	now := ts(d.now())
	state := "offline"
	if s.State == "online" {
		state = "online"
	}
	return d.tx(func(t *sql.Tx) error {
		if err := ensureDock(t, dock); err != nil {
			return err
		}
		_, err := t.Exec(`UPDATE docks SET state_since = CASE WHEN state = ? THEN state_since ELSE ? END,
			state = ?, last_heard = ?, version = CASE WHEN ? = '' THEN version ELSE ? END WHERE dock = ?`,
			state, now, state, now, clip(s.Version, maxText), clip(s.Version, maxText), dock)
		return err
	})
}

func ensureDock(t *sql.Tx, dock string) error {
	_, err := t.Exec(`INSERT INTO docks (dock) VALUES (?) ON CONFLICT DO NOTHING`, dock)
	return err
}

// DockTelemetry implements central.Observer: bays, cameras docked, the dock's queue.
func (d *DB) DockTelemetry(dock string, m wire.TelemetryMsg) error {
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error {
		if err := ensureDock(t, dock); err != nil {
			return err
		}
		if _, err := t.Exec(`UPDATE docks SET last_heard = ?, telemetry_at = ?, config_version = ?, spool_free = ?,
			pending = ?, pending_bytes = ?, oldest_pending = ? WHERE dock = ?`,
			now, now, m.Config, int64(min(m.Queue.SpoolFree, 1<<62)), max(m.Queue.Pending, 0), max(m.Queue.PendingBytes, 0), ts(m.Queue.Oldest), dock); err != nil {
			return err
		}
		if _, err := t.Exec(`DELETE FROM bays WHERE dock = ?`, dock); err != nil {
			return err
		}
		if _, err := t.Exec(`UPDATE cameras SET docked = 0 WHERE dock = ?`, dock); err != nil {
			return err
		}
		for i, s := range m.Slots {
			if i >= maxBays || s.Slot < 0 || s.Slot >= maxBays {
				continue
			}
			dev, off := s.Device, s.Officer
			if !deviceID.MatchString(dev) {
				dev = ""
			}
			if !deviceID.MatchString(off) {
				off = ""
			}
			var charge sql.NullInt64
			if s.Battery != nil {
				charge = sql.NullInt64{Int64: int64(s.Battery.ChargePct), Valid: true}
			}
			faults := make([]string, 0, len(s.Faults))
			for _, f := range s.Faults {
				faults = append(faults, clip(f, 64))
			}
			if _, err := t.Exec(`INSERT INTO bays (dock, slot, state, device, officer, charge_pct, charging, faults, updated)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				dock, s.Slot, clip(s.State, 32), dev, off, charge, s.Charging, clip(strings.Join(faults, " "), maxText), now); err != nil {
				return err
			}
			if dev == "" {
				continue
			}
			if room, err := roomForCamera(t, dock, dev); err != nil || !room {
				if err != nil {
					return err
				}
				continue // the bay shows it; the dock has made its most cameras
			}
			if err := noteCamera(t, dock, s, dev, off, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// roomForCamera reports whether dev may be kept from dock: a camera central knows, or a
// new one while fewer than maxCamerasPerDock were last seen at the dock.
func roomForCamera(t *sql.Tx, dock, dev string) (bool, error) {
	var known, n int
	if err := t.QueryRow(`SELECT count(*) FROM cameras WHERE device = ?`, dev).Scan(&known); err != nil || known > 0 {
		return known > 0, err
	}
	if err := t.QueryRow(`SELECT count(*) FROM cameras WHERE dock = ?`, dock).Scan(&n); err != nil {
		return false, err
	}
	return n < maxCamerasPerDock, nil
}

// noteCamera keeps what a bay reports of the camera docked in it.
func noteCamera(t *sql.Tx, dock string, s wire.SlotTelemetry, dev, off, now string) error {
	if _, err := t.Exec(`INSERT INTO cameras (device) VALUES (?) ON CONFLICT DO NOTHING`, dev); err != nil {
		return err
	}
	if _, err := t.Exec(`UPDATE cameras SET officer = CASE WHEN ? = '' THEN officer ELSE ? END, dock = ?, slot = ?,
		last_docked = ?, docked = 1, updated = ?, service_due = CASE WHEN ? = '' THEN service_due ELSE ? END WHERE device = ?`,
		off, off, dock, s.Slot, now, now, ts(s.ServiceDue), ts(s.ServiceDue), dev); err != nil {
		return err
	}
	if b := s.Battery; b != nil {
		if _, err := t.Exec(`UPDATE cameras SET charge_pct = ?, health_pct = ?, cycles = ? WHERE device = ?`,
			b.ChargePct, b.HealthPct, b.Cycles, dev); err != nil {
			return err
		}
	}
	if st := s.Storage; st != nil {
		if _, err := t.Exec(`UPDATE cameras SET bad_blocks = ?, wear_pct = ?, storage_errors = ?, capacity = ?, free = ? WHERE device = ?`,
			st.BadBlocks, st.WearPct, st.Errors, st.Capacity, st.Free, dev); err != nil {
			return err
		}
	}
	return nil
}

// DockAlert implements central.Observer: a fault, deduplicated by (dock, fault id); one
// the office cleared that the dock raises again (raised later) opens again as new.
func (d *DB) DockAlert(dock string, a wire.AlertMsg) error {
	if a.ID == "" {
		return nil
	}
	now := ts(d.now())
	raised := ts(a.RaisedAt)
	return d.tx(func(t *sql.Tx) error {
		if err := ensureDock(t, dock); err != nil {
			return err
		}
		if err := roomForFault(t, dock, a.ID); err != nil {
			return err
		}
		if _, err := t.Exec(`INSERT INTO alerts (dock, fault, attempt, state, received) VALUES (?, ?, ?, ?, ?)`,
			dock, a.ID, a.Attempt, a.State, now); err != nil {
			return err
		}
		// A dock repeats an alert until it is acknowledged: the newest keptAlerts of a
		// fault are kept (its count and times stay in faults).
		if _, err := t.Exec(`DELETE FROM alerts WHERE dock = ? AND fault = ? AND id <= (SELECT id FROM alerts
			WHERE dock = ? AND fault = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, dock, a.ID, dock, a.ID, keptAlerts); err != nil {
			return err
		}
		_, err := t.Exec(`INSERT INTO faults (dock, fault, device, slot, code, detail, dock_state, raised_at, first_seen, last_seen, alerts, state)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 'new')
			ON CONFLICT (dock, fault) DO UPDATE SET
				state = CASE WHEN faults.state = 'cleared' AND excluded.raised_at > faults.raised_at THEN 'new' ELSE faults.state END,
				ticket = CASE WHEN faults.state = 'cleared' AND excluded.raised_at > faults.raised_at THEN '' ELSE faults.ticket END,
				shop = CASE WHEN faults.state = 'cleared' AND excluded.raised_at > faults.raised_at THEN '' ELSE faults.shop END,
				raised_at = max(faults.raised_at, excluded.raised_at),
				detail = excluded.detail, dock_state = excluded.dock_state, slot = excluded.slot,
				last_seen = excluded.last_seen, alerts = faults.alerts + 1`,
			dock, a.ID, a.Device, a.Slot, a.Code, a.Detail, a.State, raised, now, now)
		return err
	})
}

// roomForFault makes room for fault, when it is new to the dock, within maxFaultsPerDock:
// the dock's oldest cleared fault goes (with its alerts; its steps stay in fault_steps and the audit log);
// with none cleared, the new fault is refused.
func roomForFault(t *sql.Tx, dock, fault string) error {
	var known, n int
	if err := t.QueryRow(`SELECT count(*) FROM faults WHERE dock = ? AND fault = ?`, dock, fault).Scan(&known); err != nil {
		return err
	}
	if known > 0 {
		return nil
	}
	if err := t.QueryRow(`SELECT count(*) FROM faults WHERE dock = ?`, dock).Scan(&n); err != nil {
		return err
	}
	if n < maxFaultsPerDock {
		return nil
	}
	var oldest string
	err := t.QueryRow(`SELECT fault FROM faults WHERE dock = ? AND state = ? ORDER BY last_seen LIMIT 1`, dock, FaultCleared).Scan(&oldest)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("fault %s of %s refused: the dock has %d faults open, the most kept", fault, dock, n)
	} else if err != nil {
		return err
	}
	if _, err := t.Exec(`DELETE FROM alerts WHERE dock = ? AND fault = ?`, dock, oldest); err != nil {
		return err
	}
	_, err = t.Exec(`DELETE FROM faults WHERE dock = ? AND fault = ?`, dock, oldest)
	return err
}

// DockReported implements central.Observer: the dock's answer to its desired config.
func (d *DB) DockReported(dock string, r wire.ReportedMsg) error {
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error {
		if err := ensureDock(t, dock); err != nil {
			return err
		}
		if _, err := t.Exec(`INSERT INTO dock_config (dock) VALUES (?) ON CONFLICT DO NOTHING`, dock); err != nil {
			return err
		}
		if _, err := t.Exec(`UPDATE dock_config SET reported = ?, active = ?, status = ?, reason = ?, reported_at = ? WHERE dock = ?`,
			r.Version, r.Active, r.Status, r.Reason, now, dock); err != nil {
			return err
		}
		_, err := t.Exec(`UPDATE docks SET config_version = ? WHERE dock = ?`, r.Active, dock)
		return err
	})
}

// DockHealth implements central.Observer: one docking's health sample of a device.
func (d *DB) DockHealth(dock string, h wire.HealthMsg) error {
	if !deviceID.MatchString(h.Device) || h.Time.IsZero() {
		return nil
	}
	return d.tx(func(t *sql.Tx) error {
		if room, err := roomForCamera(t, dock, h.Device); err != nil {
			return err
		} else if !room {
			return fmt.Errorf("health of %s refused: %s has %d cameras, the most kept", h.Device, dock, maxCamerasPerDock)
		}
		if _, err := t.Exec(`INSERT INTO camera_health (device, time, dock, health_pct, cycles, bad_blocks, errors, service_due)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			h.Device, ts(h.Time), dock, h.HealthPct, h.Cycles, h.BadBlocks, h.Errors, ts(h.ServiceDue)); err != nil {
			return err
		}
		if _, err := t.Exec(`DELETE FROM camera_health WHERE device = ? AND time <= (SELECT time FROM camera_health
			WHERE device = ? ORDER BY time DESC LIMIT 1 OFFSET ?)`, h.Device, h.Device, keptHealthSamples); err != nil {
			return err
		}
		if _, err := t.Exec(`INSERT INTO cameras (device, dock) VALUES (?, ?) ON CONFLICT DO NOTHING`, h.Device, dock); err != nil {
			return err
		}
		_, err := t.Exec(`UPDATE cameras SET health_pct = ?, cycles = ?, bad_blocks = ?, storage_errors = ?,
			service_due = CASE WHEN ? = '' THEN service_due ELSE ? END WHERE device = ?`,
			h.HealthPct, h.Cycles, h.BadBlocks, h.Errors, ts(h.ServiceDue), ts(h.ServiceDue), h.Device)
		return err
	})
}

// ledgerEntry is what the fleet keeps of an exported ledger entry.
type ledgerEntry struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Device    string    `json:"device"`
	Recording string    `json:"recording"`
	Detail    string    `json:"detail"`
	Hash      string    `json:"hash"`
}

// DockLedger implements central.Observer: the entries that chained (up to ack.HeadSeq),
// the verified head, breaks, and the dock's confirmation of fault steps it applied.
func (d *DB) DockLedger(dock string, entries []json.RawMessage, ack wire.LedgerAckMsg) error {
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error {
		if err := ensureDock(t, dock); err != nil {
			return err
		}
		if _, err := t.Exec(`INSERT INTO ledgers (dock) VALUES (?) ON CONFLICT DO NOTHING`, dock); err != nil {
			return err
		}
		if ack.HeadHash != "" {
			if _, err := t.Exec(`UPDATE ledgers SET head_seq = ?, head_hash = ?, verified_at = ? WHERE dock = ?`,
				ack.HeadSeq, ack.HeadHash, now, dock); err != nil {
				return err
			}
		}
		if ack.Error != "" {
			if _, err := t.Exec(`UPDATE ledgers SET breaks = breaks + 1, last_break = ?, last_break_at = ? WHERE dock = ?`,
				clip(ack.Error, maxText), now, dock); err != nil {
				return err
			}
		}
		for _, raw := range entries {
			var e ledgerEntry
			if json.Unmarshal(raw, &e) != nil || e.Seq == 0 || e.Seq > ack.HeadSeq {
				continue // only what chained at central
			}
			res, err := t.Exec(`INSERT INTO ledger_entries (dock, seq, time, kind, device, recording, detail, hash)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				dock, e.Seq, ts(e.Time), clip(e.Kind, 64), clip(e.Device, 64), clip(e.Recording, 256), clip(e.Detail, maxText), clip(e.Hash, 64))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 && e.Kind == "fault" {
				if err := confirmStep(t, dock, e); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
