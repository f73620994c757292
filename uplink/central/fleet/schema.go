package fleet

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema's versions, in order: migration i takes the schema from
// version i to i+1 (PRAGMA user_version). Never edit one that has shipped; add the next.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE docks (
	dock TEXT PRIMARY KEY,
	state TEXT NOT NULL DEFAULT '',          -- online | offline, from the retained status
	state_since TEXT NOT NULL DEFAULT '',    -- when central saw the state change
	last_heard TEXT NOT NULL DEFAULT '',
	version TEXT NOT NULL DEFAULT '',
	config_version INTEGER NOT NULL DEFAULT 0,
	spool_free INTEGER NOT NULL DEFAULT 0,
	pending INTEGER NOT NULL DEFAULT 0,
	pending_bytes INTEGER NOT NULL DEFAULT 0,
	oldest_pending TEXT NOT NULL DEFAULT '',
	telemetry_at TEXT NOT NULL DEFAULT '',
	grp TEXT NOT NULL DEFAULT ''             -- rollout group
);
CREATE TABLE bays (
	dock TEXT NOT NULL, slot INTEGER NOT NULL,
	state TEXT NOT NULL, device TEXT NOT NULL, officer TEXT NOT NULL,
	charge_pct INTEGER, charging INTEGER NOT NULL, faults TEXT NOT NULL, updated TEXT NOT NULL,
	PRIMARY KEY (dock, slot)
);
CREATE TABLE cameras (
	device TEXT PRIMARY KEY, officer TEXT NOT NULL DEFAULT '', dock TEXT NOT NULL DEFAULT '',
	slot INTEGER NOT NULL DEFAULT 0, last_docked TEXT NOT NULL DEFAULT '', docked INTEGER NOT NULL DEFAULT 0,
	health_pct INTEGER NOT NULL DEFAULT 0, cycles INTEGER NOT NULL DEFAULT 0, charge_pct INTEGER NOT NULL DEFAULT 0,
	bad_blocks INTEGER NOT NULL DEFAULT 0, wear_pct INTEGER NOT NULL DEFAULT 0, storage_errors INTEGER NOT NULL DEFAULT 0,
	capacity INTEGER NOT NULL DEFAULT 0, free INTEGER NOT NULL DEFAULT 0,
	service_due TEXT NOT NULL DEFAULT '', updated TEXT NOT NULL DEFAULT ''
);
CREATE TABLE camera_health (
	device TEXT NOT NULL, time TEXT NOT NULL, dock TEXT NOT NULL,
	health_pct INTEGER NOT NULL, cycles INTEGER NOT NULL, bad_blocks INTEGER NOT NULL,
	errors INTEGER NOT NULL, service_due TEXT NOT NULL,
	PRIMARY KEY (device, time)
);
CREATE TABLE faults (
	dock TEXT NOT NULL, fault TEXT NOT NULL, device TEXT NOT NULL, slot INTEGER NOT NULL,
	code TEXT NOT NULL, detail TEXT NOT NULL,
	dock_state TEXT NOT NULL,                 -- the lifecycle state the dock last reported
	raised_at TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
	alerts INTEGER NOT NULL DEFAULT 0,
	state TEXT NOT NULL,                      -- central's: new, acknowledged, sent-for-repair, returned, cleared
	ticket TEXT NOT NULL DEFAULT '', shop TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (dock, fault)
);
CREATE TABLE fault_steps (
	id INTEGER PRIMARY KEY,
	dock TEXT NOT NULL, fault TEXT NOT NULL, step TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL,
	ticket TEXT NOT NULL DEFAULT '', shop TEXT NOT NULL DEFAULT '',
	command TEXT NOT NULL DEFAULT '',         -- the dock command sent for it, if any
	confirmed_at TEXT NOT NULL DEFAULT ''     -- the dock's ledger entry saying it applied it
);
CREATE TABLE alerts (
	id INTEGER PRIMARY KEY, dock TEXT NOT NULL, fault TEXT NOT NULL, attempt INTEGER NOT NULL,
	state TEXT NOT NULL, received TEXT NOT NULL
);
CREATE TABLE configs (
	version INTEGER PRIMARY KEY, body TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE rollouts (
	id INTEGER PRIMARY KEY, version INTEGER NOT NULL, target TEXT NOT NULL, canary INTEGER NOT NULL,
	state TEXT NOT NULL,                      -- canary, rest, done, stopped
	reason TEXT NOT NULL DEFAULT '', by TEXT NOT NULL, started TEXT NOT NULL, ended TEXT NOT NULL DEFAULT ''
);
CREATE TABLE rollout_docks (
	rollout INTEGER NOT NULL, dock TEXT NOT NULL, wave INTEGER NOT NULL, pushed TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (rollout, dock)
);
CREATE TABLE dock_config (
	dock TEXT PRIMARY KEY, desired INTEGER NOT NULL DEFAULT 0, reported INTEGER NOT NULL DEFAULT 0,
	active INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',
	reported_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE ledgers (
	dock TEXT PRIMARY KEY, head_seq INTEGER NOT NULL DEFAULT 0, head_hash TEXT NOT NULL DEFAULT '',
	verified_at TEXT NOT NULL DEFAULT '', breaks INTEGER NOT NULL DEFAULT 0,
	last_break TEXT NOT NULL DEFAULT '', last_break_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE ledger_entries (
	dock TEXT NOT NULL, seq INTEGER NOT NULL, time TEXT NOT NULL, kind TEXT NOT NULL,
	device TEXT NOT NULL, recording TEXT NOT NULL, detail TEXT NOT NULL, hash TEXT NOT NULL,
	PRIMARY KEY (dock, seq)
);
CREATE TABLE recordings (
	dock TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, device TEXT NOT NULL,
	officer TEXT NOT NULL, team TEXT NOT NULL, start TEXT NOT NULL, end TEXT NOT NULL,
	class TEXT NOT NULL, hold TEXT NOT NULL, clock_unverified INTEGER NOT NULL,
	size INTEGER NOT NULL, sha256 TEXT NOT NULL, filed TEXT NOT NULL,
	retain_until TEXT NOT NULL,               -- '' while held or evidence: kept with its case
	PRIMARY KEY (dock, id)
);
CREATE INDEX recordings_officer ON recordings (officer, start);
CREATE INDEX recordings_device ON recordings (device, start);
CREATE TABLE holds (
	id INTEGER PRIMARY KEY, dock TEXT NOT NULL, recording TEXT NOT NULL, action TEXT NOT NULL,
	reason TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE view_requests (
	id INTEGER PRIMARY KEY, dock TEXT NOT NULL, recording TEXT NOT NULL,
	requested_by TEXT NOT NULL, reason TEXT NOT NULL, requested_at TEXT NOT NULL,
	approved_by TEXT NOT NULL DEFAULT '', approved_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE blocked (
	device TEXT PRIMARY KEY, reason TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE users (
	name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE sessions (
	token_hash TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	csrf TEXT NOT NULL, created TEXT NOT NULL, expires TEXT NOT NULL
);
CREATE TABLE audit (
	id INTEGER PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
	target TEXT NOT NULL, detail TEXT NOT NULL
);
`,
	// 2: alerts are looked up (and pruned) by fault.
	`CREATE INDEX alerts_fault ON alerts (dock, fault, id);`,
	// 3: the notifications' faults and deliveries (notify.Store: NotifyStore).
	`CREATE TABLE notify_faults (
	key TEXT PRIMARY KEY, seen TEXT NOT NULL, gathered INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL
);
CREATE INDEX notify_faults_pending ON notify_faults (gathered, seen, key);
CREATE TABLE notify_deliveries (
	id TEXT PRIMARY KEY, state TEXT NOT NULL, created TEXT NOT NULL, done TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX notify_deliveries_state ON notify_deliveries (state, created, id);`,
	// 4: a name's failed sign-ins are counted at each sign-in (the lockout).
	`CREATE INDEX audit_who_action ON audit (who, action, id);`,
	// 5: when a session was last used (it ends after SessionIdle unused).
	`ALTER TABLE sessions ADD COLUMN seen TEXT NOT NULL DEFAULT '';`,
}

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations)

// migrate applies the migrations the database has not had, each in its own transaction
// with the version it reaches, so a crash leaves a version that was wholly applied.
func (d *DB) migrate(ctx context.Context) error {
	var v int
	if err := d.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this build's %d: refusing to touch it", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		err := d.tx(func(t *sql.Tx) error {
			// Another process on the same store (receivers sharing it) may have applied
			// this step since the version was read: the transaction holds the write lock,
			// so the version read in it is the one to go on from.
			var now int
			if err := t.QueryRowContext(ctx, "PRAGMA user_version").Scan(&now); err != nil {
				return err
			}
			if now > v {
				return nil
			}
			if _, err := t.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := t.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return nil
}
