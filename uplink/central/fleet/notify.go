package fleet

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"dock/uplink/central/notify"
)

// NotifyStore keeps the notifications' faults and deliveries in the fleet database (a
// notify.Store), so they survive central's restarts and crashes with the rest of its state.
type NotifyStore struct{ db *DB }

// Notifications is the fleet database's notify.Store.
func (d *DB) Notifications() *NotifyStore { return &NotifyStore{db: d} }

var _ notify.Store = (*NotifyStore)(nil)

// AddFault implements notify.Store.
func (s *NotifyStore) AddFault(f notify.Fault) (bool, error) {
	body, err := json.Marshal(f)
	if err != nil {
		return false, err
	}
	r, err := s.db.sql.Exec(`INSERT INTO notify_faults (key, seen, body) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING`, f.Key(), ts(f.Seen), string(body))
	if err != nil {
		return false, fmt.Errorf("notify fault %s: %w", f.Key(), err)
	}
	n, err := r.RowsAffected()
	return n == 1, err
}

// Pending implements notify.Store.
func (s *NotifyStore) Pending() ([]notify.Fault, error) {
	var out []notify.Fault
	err := s.db.query(func(r *sql.Rows) error {
		var body string
		var f notify.Fault
		if err := r.Scan(&body); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(body), &f); err != nil {
			return fmt.Errorf("notify fault: %w", err)
		}
		out = append(out, f)
		return nil
	}, `SELECT body FROM notify_faults WHERE gathered = 0 ORDER BY seen, key`)
	return out, err
}

// Gather implements notify.Store: the faults gathered and the deliveries made in one
// transaction; a fault gathered already refuses the whole.
func (s *NotifyStore) Gather(keys []string, ds []notify.Delivery) error {
	return s.db.tx(func(t *sql.Tx) error {
		for _, k := range keys {
			r, err := t.Exec(`UPDATE notify_faults SET gathered = 1 WHERE key = ? AND gathered = 0`, k)
			if err != nil {
				return err
			}
			if n, err := r.RowsAffected(); err != nil || n != 1 {
				return fmt.Errorf("gather: fault %q is not pending (%v)", k, err)
			}
		}
		for _, d := range ds {
			d.State = notify.Open
			body, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if _, err := t.Exec(`INSERT INTO notify_deliveries (id, state, created, done, body) VALUES (?, ?, ?, '', ?)`,
				d.ID, string(d.State), ts(d.Created), string(body)); err != nil {
				return fmt.Errorf("gather: delivery %s: %w", d.ID, err)
			}
		}
		return nil
	})
}

// Open implements notify.Store.
func (s *NotifyStore) Open() ([]notify.Delivery, error) {
	var out []notify.Delivery
	err := s.db.query(func(r *sql.Rows) error {
		var body string
		var d notify.Delivery
		if err := r.Scan(&body); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			return fmt.Errorf("notify delivery: %w", err)
		}
		out = append(out, d)
		return nil
	}, `SELECT body FROM notify_deliveries WHERE state = ? ORDER BY created, id`, string(notify.Open))
	return out, err
}

// Save implements notify.Store.
func (s *NotifyStore) Save(d notify.Delivery) error {
	body, err := json.Marshal(d)
	if err != nil {
		return err
	}
	r, err := s.db.sql.Exec(`UPDATE notify_deliveries SET state = ?, done = ?, body = ? WHERE id = ?`, string(d.State), ts(d.Done), string(body), d.ID)
	if err != nil {
		return fmt.Errorf("notify delivery %s: %w", d.ID, err)
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("save: no delivery %q (%v)", d.ID, err)
	}
	return nil
}

// Prune implements notify.Store.
func (s *NotifyStore) Prune(before time.Time) error {
	return s.db.tx(func(t *sql.Tx) error {
		if _, err := t.Exec(`DELETE FROM notify_faults WHERE gathered = 1 AND seen < ?`, ts(before)); err != nil {
			return err
		}
		_, err := t.Exec(`DELETE FROM notify_deliveries WHERE state != ? AND done < ?`, string(notify.Open), ts(before))
		return err
	})
}
