package fleet

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"dock/uplink/central"
)

// PatrolRetention is how long central keeps a daily-patrol recording at least (article
// 12: six months); evidence and held recordings are kept with their case (no expiry).
const PatrolRetention = 6 // months

// retainUntil is a recording's retention expiry, "" when it is kept with its case.
func retainUntil(class, hold string, start time.Time) string {
	if class != "patrol" || hold != "" || start.IsZero() {
		return ""
	}
	return ts(start.AddDate(0, PatrolRetention, 0))
}

// RecordingFiled implements central.Observer: the recording enters the evidence index
// (article 17 fields, class, hold, retention expiry). A repeat changes nothing.
func (d *DB) RecordingFiled(dock string, s central.Stored) error {
	m := s.Meta
	return d.tx(func(t *sql.Tx) error {
		_, err := t.Exec(`INSERT INTO recordings (dock, id, name, device, officer, team, start, end, class, hold,
			clock_unverified, size, sha256, filed, retain_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
			dock, m.ID, clip(m.Name, 256), clip(m.Device, 64), clip(m.Officer, 64), clip(m.Team, 128), ts(m.Start), ts(m.End),
			clip(m.Class, 32), clip(m.Hold, 32), m.ClockUnverified, s.Size, s.SHA256, ts(s.Stored), retainUntil(m.Class, m.Hold, m.Start))
		return err
	})
}

// Recording is one entry of the evidence index.
type Recording struct {
	Dock, ID, Name, Device, Officer, Team, Class, Hold, SHA256 string
	Start, End, Filed, RetainUntil                             time.Time
	ClockUnverified                                            bool
	Size                                                       int64
}

// Search selects recordings; empty fields match everything. Day is YYYY-MM-DD (UTC).
type Search struct {
	Officer, Device, Dock, Day, Class string
	Limit                             int
}

const recordingCols = `dock, id, name, device, officer, team, class, hold, sha256, start, end, filed, retain_until, clock_unverified, size`

func scanRecording(sc interface{ Scan(...any) error }) (Recording, error) {
	var r Recording
	var start, end, filed, until string
	err := sc.Scan(&r.Dock, &r.ID, &r.Name, &r.Device, &r.Officer, &r.Team, &r.Class, &r.Hold, &r.SHA256,
		&start, &end, &filed, &until, &r.ClockUnverified, &r.Size)
	r.Start, r.End, r.Filed, r.RetainUntil = parseTS(start), parseTS(end), parseTS(filed), parseTS(until)
	return r, err
}

// Recordings searches the index, newest first.
func (d *DB) Recordings(q Search) ([]Recording, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 200
	}
	var from, to string
	if q.Day != "" {
		day, err := time.Parse("2006-01-02", q.Day)
		if err != nil {
			return nil, fmt.Errorf("day %q: want YYYY-MM-DD", q.Day)
		}
		from, to = ts(day), ts(day.Add(24*time.Hour))
	}
	rows, err := d.sql.Query(`SELECT `+recordingCols+` FROM recordings
		WHERE (? = '' OR officer = ?) AND (? = '' OR device = ?) AND (? = '' OR dock = ?) AND (? = '' OR class = ?)
		AND (? = '' OR (start >= ? AND start < ?)) ORDER BY start DESC LIMIT ?`,
		q.Officer, q.Officer, q.Device, q.Device, q.Dock, q.Dock, q.Class, q.Class, from, from, to, q.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Recording
	for rows.Next() {
		r, err := scanRecording(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RecordingByID returns one indexed recording.
func (d *DB) RecordingByID(dock, id string) (Recording, error) {
	r, err := scanRecording(d.sql.QueryRow(`SELECT `+recordingCols+` FROM recordings WHERE dock = ? AND id = ?`, dock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("recording %s of %s: %w", id, dock, ErrNotFound)
	}
	return r, err
}

// HoldReasons are the article 13 reasons a hold may be placed for.
var HoldReasons = []string{"dispute", "obstruction", "mass-incident", "other"}

// SetHold places (reason one of HoldReasons) or releases (reason "") a hold at central,
// with why in the audit log; a held recording has no retention expiry. It returns the dock
// command to send: "place-hold" (the dock keeps its copy, if it still has one, until
// released) or "release-hold".
func (d *DB) SetHold(dock, id, reason, why, by string) (command string, err error) {
	if strings.TrimSpace(why) == "" {
		return "", errors.New("a hold placed or released needs a why")
	}
	valid := reason == ""
	for _, h := range HoldReasons {
		valid = valid || h == reason
	}
	if !valid {
		return "", fmt.Errorf("hold reason %q: one of %v", reason, HoldReasons)
	}
	now := ts(d.now())
	action, command := "place-hold", "place-hold"
	if reason == "" {
		action, command = "release-hold", "release-hold"
	}
	err = d.tx(func(t *sql.Tx) error {
		r, err := scanRecording(t.QueryRow(`SELECT `+recordingCols+` FROM recordings WHERE dock = ? AND id = ?`, dock, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("recording %s of %s: %w", id, dock, ErrNotFound)
		} else if err != nil {
			return err
		}
		if _, err := t.Exec(`UPDATE recordings SET hold = ?, retain_until = ? WHERE dock = ? AND id = ?`,
			reason, retainUntil(r.Class, reason, r.Start), dock, id); err != nil {
			return err
		}
		if _, err := t.Exec(`INSERT INTO holds (dock, recording, action, reason, by, at) VALUES (?, ?, ?, ?, ?, ?)`,
			dock, id, action, reason+": "+why, by, now); err != nil {
			return err
		}
		return audit(t, now, by, action, dock+"/"+id, fmt.Sprintf("reason %q why %q", reason, why))
	})
	return command, err
}

// ViewRequest is a person's request to view a recording's footage (article 16).
type ViewRequest struct {
	ID                                    int64
	Dock, Recording, By, Reason, Approver string
	At, ApprovedAt                        time.Time
}

// RequestView asks to view a recording's footage; someone else must approve it.
func (d *DB) RequestView(dock, id, reason, by string) (int64, error) {
	if strings.TrimSpace(reason) == "" {
		return 0, errors.New("a request to view footage needs a reason")
	}
	now := ts(d.now())
	var rid int64
	err := d.tx(func(t *sql.Tx) error {
		var n int
		if err := t.QueryRow(`SELECT count(*) FROM recordings WHERE dock = ? AND id = ?`, dock, id).Scan(&n); err != nil || n == 0 {
			return fmt.Errorf("recording %s of %s: %w", id, dock, ErrNotFound)
		}
		res, err := t.Exec(`INSERT INTO view_requests (dock, recording, requested_by, reason, requested_at) VALUES (?, ?, ?, ?, ?)`,
			dock, id, by, reason, now)
		if err != nil {
			return err
		}
		rid, _ = res.LastInsertId()
		return audit(t, now, by, "view-request", dock+"/"+id, fmt.Sprintf("request %d reason %q", rid, reason))
	})
	return rid, err
}

// ViewWindow is how long an approval lets who asked view the footage: a shift. After it
// the view link is refused and a new request needs a new approval.
const ViewWindow = 8 * time.Hour

// ErrNotApproved means footage was asked for without a second person's approval.
var ErrNotApproved = errors.New("viewing needs the approval of a second person with the approver role")

// ApproveView approves request rid; the approver must not be who asked.
func (d *DB) ApproveView(rid int64, by string) error {
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error {
		var asker, dock, rec, approved string
		err := t.QueryRow(`SELECT requested_by, dock, recording, approved_by FROM view_requests WHERE id = ?`, rid).Scan(&asker, &dock, &rec, &approved)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("view request %d: %w", rid, ErrNotFound)
		} else if err != nil {
			return err
		}
		if asker == by {
			return fmt.Errorf("%w: %s cannot approve their own request", ErrNotApproved, by)
		}
		if approved != "" {
			return fmt.Errorf("view request %d was approved by %s already", rid, approved)
		}
		if _, err := t.Exec(`UPDATE view_requests SET approved_by = ?, approved_at = ? WHERE id = ?`, by, now, rid); err != nil {
			return err
		}
		return audit(t, now, by, "view-approve", dock+"/"+rec, fmt.Sprintf("request %d by %s", rid, asker))
	})
}

// View records a view of footage under request rid by who asked, if it was approved by
// someone else; it returns the recording to show.
func (d *DB) View(rid int64, by string) (Recording, error) {
	now := ts(d.now())
	var r Recording
	err := d.tx(func(t *sql.Tx) error {
		var asker, dock, rec, approver, approvedAt string
		err := t.QueryRow(`SELECT requested_by, dock, recording, approved_by, approved_at FROM view_requests WHERE id = ?`, rid).Scan(&asker, &dock, &rec, &approver, &approvedAt)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("view request %d: %w", rid, ErrNotFound)
		} else if err != nil {
			return err
		}
		if asker != by || approver == "" || approver == by {
			return ErrNotApproved
		}
		if at := parseTS(approvedAt); at.IsZero() || !d.now().Before(at.Add(ViewWindow)) {
			return fmt.Errorf("%w: request %d was approved at %s, its %v have passed: ask again", ErrNotApproved, rid, approvedAt, ViewWindow)
		}
		if r, err = scanRecording(t.QueryRow(`SELECT `+recordingCols+` FROM recordings WHERE dock = ? AND id = ?`, dock, rec)); err != nil {
			return err
		}
		return audit(t, now, by, "view", dock+"/"+rec, fmt.Sprintf("request %d approved by %s", rid, approver))
	})
	return r, err
}

// ViewRequests returns the requests, newest first.
func (d *DB) ViewRequests(limit int) ([]ViewRequest, error) {
	rows, err := d.sql.Query(`SELECT id, dock, recording, requested_by, reason, approved_by, requested_at, approved_at
		FROM view_requests ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ViewRequest
	for rows.Next() {
		var v ViewRequest
		var at, ap string
		if err := rows.Scan(&v.ID, &v.Dock, &v.Recording, &v.By, &v.Reason, &v.Approver, &at, &ap); err != nil {
			return nil, err
		}
		v.At, v.ApprovedAt = parseTS(at), parseTS(ap)
		out = append(out, v)
	}
	return out, rows.Err()
}

// HoldStep is one placement or release of a hold: who, why, when.
type HoldStep struct {
	Dock, Recording, Action, Reason, By string
	At                                  time.Time
}

// Holds returns the newest hold steps first, at most limit.
func (d *DB) Holds(limit int) ([]HoldStep, error) {
	var out []HoldStep
	err := d.query(func(r *sql.Rows) error {
		var h HoldStep
		var at string
		if err := r.Scan(&h.Dock, &h.Recording, &h.Action, &h.Reason, &h.By, &at); err != nil {
			return err
		}
		h.At = parseTS(at)
		out = append(out, h)
		return nil
	}, `SELECT dock, recording, action, reason, by, at FROM holds ORDER BY id DESC LIMIT ?`, limit)
	return out, err
}
