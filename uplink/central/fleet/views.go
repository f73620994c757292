package fleet

import (
	"database/sql"
	"time"
)

// Dock is one dock as the Fleet page shows it.
type Dock struct {
	Dock, State, Version, Group                string
	Since, LastHeard, TelemetryAt, OldestQueue time.Time
	ConfigVersion, SpoolFree, PendingBytes     int64
	Pending                                    int
	Bays                                       []Bay
}

// Quiet reports whether the dock stands out: offline, or not heard from for longer than
// quiet (its telemetry stopped).
func (k Dock) Quiet(now time.Time, quiet time.Duration) bool {
	return k.State != "online" || now.Sub(k.LastHeard) > quiet
}

// Bay is one bay of a dock, from its last telemetry.
type Bay struct {
	Slot                          int
	State, Device, Officer, Fault string
	ChargePct                     sql.NullInt64
	Charging                      bool
}

// query runs q and calls fn for every row.
func (d *DB) query(fn func(*sql.Rows) error, q string, args ...any) error {
	rows, err := d.sql.Query(q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Docks returns every dock with its bays, by id.
func (d *DB) Docks() ([]Dock, error) {
	var out []Dock
	err := d.query(func(r *sql.Rows) error {
		var k Dock
		var since, heard, tel, oldest string
		if err := r.Scan(&k.Dock, &k.State, &k.Version, &k.Group, &since, &heard, &tel, &oldest,
			&k.ConfigVersion, &k.SpoolFree, &k.PendingBytes, &k.Pending); err != nil {
			return err
		}
		k.Since, k.LastHeard, k.TelemetryAt, k.OldestQueue = parseTS(since), parseTS(heard), parseTS(tel), parseTS(oldest)
		out = append(out, k)
		return nil
	}, `SELECT dock, state, version, grp, state_since, last_heard, telemetry_at, oldest_pending,
		config_version, spool_free, pending_bytes, pending FROM docks ORDER BY dock`)
	if err != nil {
		return nil, err
	}
	for i := range out {
		err := d.query(func(r *sql.Rows) error {
			var b Bay
			if err := r.Scan(&b.Slot, &b.State, &b.Device, &b.Officer, &b.Fault, &b.ChargePct, &b.Charging); err != nil {
				return err
			}
			out[i].Bays = append(out[i].Bays, b)
			return nil
		}, `SELECT slot, state, device, officer, faults, charge_pct, charging FROM bays WHERE dock = ? ORDER BY slot`, out[i].Dock)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Camera is one device as the Devices page shows it.
type Camera struct {
	Device, Officer, Dock                                                 string
	Slot, HealthPct, Cycles, ChargePct, BadBlocks, WearPct, StorageErrors int
	Docked                                                                bool
	LastDocked, ServiceDue                                                time.Time
	History                                                               []HealthSample
}

// OffloadOverdue reports article 11's breach: the camera is not in a dock and was last
// docked more than 24 h before now (so its last shift's footage has not been offloaded).
func (c Camera) OffloadOverdue(now time.Time) bool {
	return !c.Docked && !c.LastDocked.IsZero() && now.Sub(c.LastDocked) > 24*time.Hour
}

// HealthSample is one docking's battery and storage health of a camera.
type HealthSample struct {
	Time                                 time.Time
	Dock                                 string
	HealthPct, Cycles, BadBlocks, Errors int
}

// Cameras returns every camera with its health history (oldest first, the newest 200).
func (d *DB) Cameras() ([]Camera, error) {
	var out []Camera
	err := d.query(func(r *sql.Rows) error {
		var c Camera
		var last, due string
		if err := r.Scan(&c.Device, &c.Officer, &c.Dock, &c.Slot, &c.HealthPct, &c.Cycles, &c.ChargePct, &c.BadBlocks,
			&c.WearPct, &c.StorageErrors, &c.Docked, &last, &due); err != nil {
			return err
		}
		c.LastDocked, c.ServiceDue = parseTS(last), parseTS(due)
		out = append(out, c)
		return nil
	}, `SELECT device, officer, dock, slot, health_pct, cycles, charge_pct, bad_blocks, wear_pct, storage_errors,
		docked, last_docked, service_due FROM cameras ORDER BY device`)
	if err != nil {
		return nil, err
	}
	for i := range out {
		err := d.query(func(r *sql.Rows) error {
			var h HealthSample
			var t string
			if err := r.Scan(&t, &h.Dock, &h.HealthPct, &h.Cycles, &h.BadBlocks, &h.Errors); err != nil {
				return err
			}
			h.Time = parseTS(t)
			out[i].History = append([]HealthSample{h}, out[i].History...)
			return nil
		}, `SELECT time, dock, health_pct, cycles, bad_blocks, errors FROM camera_health WHERE device = ? ORDER BY time DESC LIMIT 200`, out[i].Device)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Fault is one deduplicated fault of the inbox, with its steps.
type Fault struct {
	Dock, ID, Device, Code, Detail, DockState, Ticket, Shop string
	State                                                   FaultState
	Slot, Alerts                                            int
	RaisedAt, FirstSeen, LastSeen                           time.Time
	Steps                                                   []Step
}

// Step is one person's step on a fault and when the dock confirmed it (zero: not yet).
type Step struct {
	Step                      FaultState
	By, Ticket, Shop, Command string
	At, Confirmed             time.Time
}

// Faults returns the inbox: new faults first, then open ones, cleared last; newest first
// within each.
func (d *DB) Faults() ([]Fault, error) {
	var out []Fault
	err := d.query(func(r *sql.Rows) error {
		var f Fault
		var raised, first, last string
		if err := r.Scan(&f.Dock, &f.ID, &f.Device, &f.Code, &f.Detail, &f.DockState, &f.Ticket, &f.Shop, &f.State,
			&f.Slot, &f.Alerts, &raised, &first, &last); err != nil {
			return err
		}
		f.RaisedAt, f.FirstSeen, f.LastSeen = parseTS(raised), parseTS(first), parseTS(last)
		out = append(out, f)
		return nil
	}, `SELECT dock, fault, device, code, detail, dock_state, ticket, shop, state, slot, alerts, raised_at, first_seen, last_seen
		FROM faults ORDER BY CASE state WHEN 'new' THEN 0 WHEN 'cleared' THEN 2 ELSE 1 END, first_seen DESC`)
	if err != nil {
		return nil, err
	}
	for i := range out {
		err := d.query(func(r *sql.Rows) error {
			var s Step
			var at, conf string
			if err := r.Scan(&s.Step, &s.By, &s.Ticket, &s.Shop, &s.Command, &at, &conf); err != nil {
				return err
			}
			s.At, s.Confirmed = parseTS(at), parseTS(conf)
			out[i].Steps = append(out[i].Steps, s)
			return nil
		}, `SELECT step, by, ticket, shop, command, at, confirmed_at FROM fault_steps WHERE dock = ? AND fault = ? ORDER BY id`, out[i].Dock, out[i].ID)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Ledger is a dock's exported ledger as central verified it.
type Ledger struct {
	Dock, HeadHash, LastBreak string
	HeadSeq                   uint64
	Breaks, Entries           int
	VerifiedAt, LastBreakAt   time.Time
}

// Ledgers returns every dock's ledger state.
func (d *DB) Ledgers() ([]Ledger, error) {
	var out []Ledger
	err := d.query(func(r *sql.Rows) error {
		var l Ledger
		var v, b string
		if err := r.Scan(&l.Dock, &l.HeadSeq, &l.HeadHash, &v, &l.Breaks, &l.LastBreak, &b, &l.Entries); err != nil {
			return err
		}
		l.VerifiedAt, l.LastBreakAt = parseTS(v), parseTS(b)
		out = append(out, l)
		return nil
	}, `SELECT l.dock, l.head_seq, l.head_hash, l.verified_at, l.breaks, l.last_break, l.last_break_at,
		(SELECT count(*) FROM ledger_entries e WHERE e.dock = l.dock) FROM ledgers l ORDER BY l.dock`)
	return out, err
}

// LedgerEntry is one entry of a dock's ledger as central holds it.
type LedgerEntry struct {
	Seq                                   uint64
	Time                                  time.Time
	Kind, Device, Recording, Detail, Hash string
}

// LedgerEntries returns a dock's entries, newest first, at most limit.
func (d *DB) LedgerEntries(dock string, limit int) ([]LedgerEntry, error) {
	var out []LedgerEntry
	err := d.query(func(r *sql.Rows) error {
		var e LedgerEntry
		var t string
		if err := r.Scan(&e.Seq, &t, &e.Kind, &e.Device, &e.Recording, &e.Detail, &e.Hash); err != nil {
			return err
		}
		e.Time = parseTS(t)
		out = append(out, e)
		return nil
	}, `SELECT seq, time, kind, device, recording, detail, hash FROM ledger_entries WHERE dock = ? ORDER BY seq DESC LIMIT ?`, dock, limit)
	return out, err
}
