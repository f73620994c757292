// Package fleet owns central's durable fleet state: docks, bays, cameras and their health,
// faults and their lifecycle, alerts, config rollouts, ledgers, the recordings' index,
// people, sessions and the audit log, in one SQLite file (modernc.org/sqlite, pure Go).
// It never talks to a dock: the receiver feeds it (Observer) and the console acts on it.
package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// FileName is the database's name under central's store directory.
const FileName = "fleet.db"

// DB is central's fleet state. Every write is a transaction committed with
// synchronous=FULL in WAL mode: once a method returns nil, what it wrote survives a crash
// of the process or the machine.
type DB struct {
	sql *sql.DB
	now func() time.Time
}

// Open opens (creating if needed) the fleet database under dir and brings its schema to
// the newest version. Receivers sharing a store open it at the same moment: while another
// process holds the lock that switching to WAL or a migration needs (SQLite answers
// SQLITE_BUSY there without waiting out busy_timeout), Open tries again for up to
// openPatience.
func Open(dir string) (*DB, error) {
	deadline := time.Now().Add(openPatience)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		d, err := open(dir)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return d, err
		}
		time.Sleep(wait)
	}
}

// openPatience is how long Open waits out another process's lock.
const openPatience = 30 * time.Second

// isBusy reports whether err is SQLite's SQLITE_BUSY (5): another connection holds a lock.
func isBusy(err error) bool {
	var se interface{ Code() int }
	if errors.As(err, &se) {
		return se.Code()&0xff == 5
	}
	return false
}

func open(dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	path := filepath.Join(dir, FileName)
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate") // a write transaction takes the lock at its start: no upgrade deadlock
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("fleet: open %s: %w", path, err)
	}
	d := &DB{sql: db, now: func() time.Time { return time.Now().UTC() }}
	if err := d.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("fleet: %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("fleet: %s: journal mode %q, want wal (%v)", path, mode, err)
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.sql.Close() }

// UseClock replaces the clock the database stamps times with (tests).
func (d *DB) UseClock(now func() time.Time) { d.now = func() time.Time { return now().UTC() } }

// tx runs fn in one write transaction.
func (d *DB) tx(fn func(*sql.Tx) error) error {
	t, err := d.sql.Begin()
	if err != nil {
		return err
	}
	if err := fn(t); err != nil {
		_ = t.Rollback()
		return err
	}
	return t.Commit()
}

// ts is how times are stored: RFC 3339 in UTC with nanoseconds, fixed width so that text
// order is time order; the zero time is stored as "".
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// parseTS reads a time stored by ts.
func parseTS(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// ErrNotFound means what was asked for is not in the database.
var ErrNotFound = errors.New("not found")

// clip shortens a dock's free text to n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxText bounds any text a dock sends that the database keeps.
const maxText = 512
