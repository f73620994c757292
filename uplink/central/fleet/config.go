package fleet

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Blocked is a device out of service fleet-wide (the configs' block list).
type Blocked struct {
	Device, Reason, By string
	At                 time.Time
}

// BlockList returns the fleet's block list, by device.
func (d *DB) BlockList() ([]Blocked, error) {
	var out []Blocked
	err := d.query(func(r *sql.Rows) error {
		var b Blocked
		var at string
		if err := r.Scan(&b.Device, &b.Reason, &b.By, &at); err != nil {
			return err
		}
		b.At = parseTS(at)
		out = append(out, b)
		return nil
	}, `SELECT device, reason, by, at FROM blocked ORDER BY device`)
	return out, err
}

// SetBlocked puts a device on the block list (block) or takes it off, audited; the
// docks take it with the next config rolled out.
func (d *DB) SetBlocked(device, reason, by string, block bool) error {
	if !deviceID.MatchString(device) {
		return fmt.Errorf("device %q is not an id", device)
	}
	if block && reason == "" {
		return errors.New("blocking a device needs a reason")
	}
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error {
		var err error
		action := "block"
		if block {
			_, err = t.Exec(`INSERT INTO blocked (device, reason, by, at) VALUES (?, ?, ?, ?)
				ON CONFLICT (device) DO UPDATE SET reason = excluded.reason, by = excluded.by, at = excluded.at`, device, reason, by, now)
		} else {
			action = "unblock"
			_, err = t.Exec(`DELETE FROM blocked WHERE device = ?`, device)
		}
		if err != nil {
			return err
		}
		return audit(t, now, by, action, device, reason)
	})
}

// Config is a config version central signed and kept.
type Config struct {
	Version int64
	Body    string // the wire.ConfigMsg JSON, unsigned
	By      string
	At      time.Time
}

// maxReportedVersion bounds the versions docks report that central takes into account.
const maxReportedVersion int64 = 1 << 53

// NextConfigVersion is the version a new config gets: above every one central made and
// every one a dock reports.
func (d *DB) NextConfigVersion() (int64, error) {
	var v int64
	// What a dock reports counts only below maxReportedVersion: a dock reporting a huge
	// version must not make the next one overflow.
	err := d.sql.QueryRow(`SELECT max(coalesce((SELECT max(version) FROM configs), 0),
		coalesce((SELECT max(max(active, reported)) FROM dock_config WHERE max(active, reported) < ?), 0))`, maxReportedVersion).Scan(&v)
	return v + 1, err
}

// LatestConfig returns the newest config central made (ErrNotFound before the first).
func (d *DB) LatestConfig() (Config, error) {
	var c Config
	var at string
	err := d.sql.QueryRow(`SELECT version, body, by, at FROM configs ORDER BY version DESC LIMIT 1`).Scan(&c.Version, &c.Body, &c.By, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	c.At = parseTS(at)
	return c, err
}

// ConfigByVersion returns one config.
func (d *DB) ConfigByVersion(v int64) (Config, error) {
	var c Config
	var at string
	err := d.sql.QueryRow(`SELECT version, body, by, at FROM configs WHERE version = ?`, v).Scan(&c.Version, &c.Body, &c.By, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	c.At = parseTS(at)
	return c, err
}

// Rollout states.
const (
	RolloutCanary  = "canary"  // the canary docks have it; waiting for each to apply it
	RolloutRest    = "rest"    // the rest have it; waiting for each to apply it
	RolloutDone    = "done"    // every dock applied it
	RolloutStopped = "stopped" // a dock rejected or rolled it back: nothing more is pushed
)

// StartRollout keeps config version v (body) and a rollout of it to docks, the first
// canary of them first (wave 0), audited; any rollout still running stops, superseded.
// The console pushes each wave.
func (d *DB) StartRollout(v int64, body string, docks []string, canary int, target, by string) (int64, error) {
	if len(docks) == 0 {
		return 0, errors.New("a rollout needs at least one dock")
	}
	canary = min(max(canary, 1), len(docks))
	now := ts(d.now())
	var id int64
	err := d.tx(func(t *sql.Tx) error {
		if _, err := t.Exec(`INSERT INTO configs (version, body, by, at) VALUES (?, ?, ?, ?)`, v, body, by, now); err != nil {
			return fmt.Errorf("config %d: %w", v, err)
		}
		res, err := t.Exec(`INSERT INTO rollouts (version, target, canary, state, by, started) VALUES (?, ?, ?, ?, ?, ?)`,
			v, target, canary, RolloutCanary, by, now)
		if err != nil {
			return err
		}
		id, _ = res.LastInsertId()
		// A rollout still running is superseded: it must not push its older version over
		// this one's retained config later.
		if _, err := t.Exec(`UPDATE rollouts SET state = ?, reason = ?, ended = ? WHERE id != ? AND state IN (?, ?)`,
			RolloutStopped, fmt.Sprintf("superseded by rollout %d (version %d)", id, v), now, id, RolloutCanary, RolloutRest); err != nil {
			return err
		}
		for i, dock := range docks {
			wave := 1
			if i < canary {
				wave = 0
			}
			if _, err := t.Exec(`INSERT INTO rollout_docks (rollout, dock, wave) VALUES (?, ?, ?)`, id, dock, wave); err != nil {
				return err
			}
			if _, err := t.Exec(`INSERT INTO dock_config (dock) VALUES (?) ON CONFLICT DO NOTHING`, dock); err != nil {
				return err
			}
		}
		return audit(t, now, by, "config-rollout", target, fmt.Sprintf("version %d to %d docks, %d canary first", v, len(docks), canary))
	})
	return id, err
}

// Rollout is one config rollout and where each of its docks is.
type Rollout struct {
	ID, Version       int64
	Target, State, By string
	Reason            string
	Canary            int
	Started, Ended    time.Time
	Docks             []RolloutDock
}

// RolloutDock is one dock of a rollout: desired vs reported.
type RolloutDock struct {
	Dock                      string
	Wave                      int
	Pushed, ReportedAt        time.Time
	Desired, Reported, Active int64
	Status, Reason            string
}

// Rollouts returns the newest rollouts first, at most limit.
func (d *DB) Rollouts(limit int) ([]Rollout, error) {
	var out []Rollout
	err := d.query(func(r *sql.Rows) error {
		var o Rollout
		var st, en string
		if err := r.Scan(&o.ID, &o.Version, &o.Target, &o.State, &o.By, &o.Reason, &o.Canary, &st, &en); err != nil {
			return err
		}
		o.Started, o.Ended = parseTS(st), parseTS(en)
		out = append(out, o)
		return nil
	}, `SELECT id, version, target, state, by, reason, canary, started, ended FROM rollouts ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	for i := range out {
		err := d.query(func(r *sql.Rows) error {
			var k RolloutDock
			var p, ra string
			if err := r.Scan(&k.Dock, &k.Wave, &p, &k.Desired, &k.Reported, &k.Active, &k.Status, &k.Reason, &ra); err != nil {
				return err
			}
			k.Pushed, k.ReportedAt = parseTS(p), parseTS(ra)
			out[i].Docks = append(out[i].Docks, k)
			return nil
		}, `SELECT rd.dock, rd.wave, rd.pushed, c.desired, c.reported, c.active, c.status, c.reason, c.reported_at
			FROM rollout_docks rd JOIN dock_config c ON c.dock = rd.dock WHERE rd.rollout = ? ORDER BY rd.wave, rd.dock`, out[i].ID)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MarkPushed records that a rollout's dock was sent its desired config.
func (d *DB) MarkPushed(rollout int64, dock string, version int64) error {
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error {
		if _, err := t.Exec(`UPDATE rollout_docks SET pushed = ? WHERE rollout = ? AND dock = ?`, now, rollout, dock); err != nil {
			return err
		}
		_, err := t.Exec(`UPDATE dock_config SET desired = ? WHERE dock = ?`, version, dock)
		return err
	})
}

// SetRolloutState moves a rollout on (RolloutRest, RolloutDone, RolloutStopped with why),
// audited as the console's own step.
func (d *DB) SetRolloutState(id int64, state, reason string) error {
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error {
		ended := ""
		if state == RolloutDone || state == RolloutStopped {
			ended = now
		}
		if _, err := t.Exec(`UPDATE rollouts SET state = ?, reason = ?, ended = ? WHERE id = ?`, state, reason, ended, id); err != nil {
			return err
		}
		return audit(t, now, "console", "rollout-"+state, fmt.Sprint(id), reason)
	})
}

// DockConfigs returns every dock's desired and reported config, by dock.
func (d *DB) DockConfigs() ([]RolloutDock, error) {
	var out []RolloutDock
	err := d.query(func(r *sql.Rows) error {
		var k RolloutDock
		var ra string
		if err := r.Scan(&k.Dock, &k.Desired, &k.Reported, &k.Active, &k.Status, &k.Reason, &ra); err != nil {
			return err
		}
		k.ReportedAt = parseTS(ra)
		out = append(out, k)
		return nil
	}, `SELECT d.dock, coalesce(c.desired, 0), coalesce(c.reported, 0), coalesce(c.active, 0), coalesce(c.status, ''),
		coalesce(c.reason, ''), coalesce(c.reported_at, '') FROM docks d LEFT JOIN dock_config c ON c.dock = d.dock ORDER BY d.dock`)
	return out, err
}
