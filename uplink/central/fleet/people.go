package fleet

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// Role is what a person may do at the console.
type Role string

const (
	RoleMaintenance Role = "maintenance" // the faults inbox
	RoleSupervisor  Role = "supervisor"  // faults and the block list, holds
	RoleApprover    Role = "approver"    // approves another person's request to view footage
	RoleAuditor     Role = "auditor"     // reads everything, changes nothing
	RoleAdmin       Role = "admin"       // people, configs and rollouts, everything
)

// Roles lists every role.
var Roles = []Role{RoleMaintenance, RoleSupervisor, RoleApprover, RoleAuditor, RoleAdmin}

// ValidRole reports whether r is a known role.
func ValidRole(r Role) bool {
	for _, k := range Roles {
		if r == k {
			return true
		}
	}
	return false
}

var userName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)

// argon2id parameters (RFC 9106's second recommended option, memory lowered for a small
// office server: 64 MiB, 3 passes).
const (
	argonTime    = 3
	argonMemory  = 64 << 10
	argonThreads = 2
	argonKeyLen  = 32
)

func hashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	k := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(k)), nil
}

func checkPassword(stored, pw string) bool {
	var m, t uint32
	var p uint8
	f := strings.Split(stored, "$")
	if len(f) != 5 || f[0] != "argon2id" {
		return false
	}
	if _, err := fmt.Sscanf(f[2], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(f[3])
	want, err2 := base64.RawStdEncoding.DecodeString(f[4])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// randomToken is n random bytes, URL-safe base64.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrUserExists means a user of that name exists.
var ErrUserExists = errors.New("user exists")

// AddUser creates a user with role and a new random password, returned once: it is
// stored only as an argon2id hash. by is who created it, for the audit log.
func (d *DB) AddUser(name string, role Role, by string) (password string, err error) {
	if !userName.MatchString(name) {
		return "", fmt.Errorf("user name %q: lower-case letters, digits, _ . -, starting with a letter", name)
	}
	if !ValidRole(role) {
		return "", fmt.Errorf("role %q: one of %v", role, Roles)
	}
	password = randomToken(15)
	h, err := hashPassword(password)
	if err != nil {
		return "", err
	}
	now := ts(d.now())
	err = d.tx(func(t *sql.Tx) error {
		res, err := t.Exec(`INSERT INTO users (name, role, hash, created) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, name, role, h, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s", ErrUserExists, name)
		}
		return audit(t, now, by, "add-user", name, "role "+string(role))
	})
	if err != nil {
		return "", err
	}
	return password, nil
}

// Session is a signed-in person.
type Session struct {
	User    string
	Role    Role
	CSRF    string // the token every form of this session must carry
	Expires time.Time
}

// SessionTTL is how long a session lasts.
const SessionTTL = 12 * time.Hour

// SessionIdle ends a session not used for that long (a console left open on a shared PC).
const SessionIdle = 30 * time.Minute

// ErrBadLogin means the name or the password is wrong (which, is not said).
var ErrBadLogin = errors.New("wrong user name or password")

// ErrLockedOut means a name had MaxFailedLogins failures in LockoutWindow: no password
// is checked for it until the window has passed.
var ErrLockedOut = errors.New("too many failed sign-ins for this name: try again later")

const (
	MaxFailedLogins = 5                // failures of one name in LockoutWindow that lock it
	LockoutWindow   = 15 * time.Minute // how far back failures count (since the last success)
)

// loginSlots bounds the argon2id derivations running at once (64 MiB each): a flood of
// sign-ins waits here rather than taking central's memory, and a name's failures are
// counted and its password checked under one slot.
var loginSlots = make(chan struct{}, 2)

// decoyHash is checked when a name has no account, so that the answer takes as long as
// for a wrong password and its time does not tell who exists.
var decoyHash = sync.OnceValue(func() string {
	h, err := hashPassword(randomToken(15))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return h
})

// Login checks a password and opens a session: the token goes in the person's cookie, only
// its hash is stored. Failures and successes are audited; a name with MaxFailedLogins
// failures in LockoutWindow (since its last success) is refused without a check.
func (d *DB) Login(name, password string) (token string, s Session, err error) {
	loginSlots <- struct{}{}
	defer func() { <-loginSlots }()
	name = clip(name, 64)
	now := d.now()
	failed, err := d.failedLogins(name, now)
	if err != nil {
		return "", s, err
	}
	if failed >= MaxFailedLogins {
		checkPassword(decoyHash(), password) // no faster than a guess
		_ = d.Audit(name, "login-locked", "", fmt.Sprintf("%d failures in %v", failed, LockoutWindow))
		return "", s, ErrLockedOut
	}
	var role Role
	var h string
	err = d.sql.QueryRow(`SELECT role, hash FROM users WHERE name = ?`, name).Scan(&role, &h)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", s, err
	}
	known := err == nil
	if !known {
		h = decoyHash()
	}
	if ok := checkPassword(h, password); !ok || !known {
		_ = d.Audit(name, "login-failed", "", "")
		return "", s, ErrBadLogin
	}
	token = randomToken(32)
	s = Session{User: name, Role: role, CSRF: randomToken(24), Expires: now.Add(SessionTTL)}
	err = d.tx(func(t *sql.Tx) error {
		if _, err := t.Exec(`DELETE FROM sessions WHERE expires < ?`, ts(now)); err != nil {
			return err
		}
		if _, err := t.Exec(`INSERT INTO sessions (token_hash, user, csrf, created, expires, seen) VALUES (?, ?, ?, ?, ?, ?)`,
			tokenHash(token), name, s.CSRF, ts(now), ts(s.Expires), ts(now)); err != nil {
			return err
		}
		return audit(t, ts(now), name, "login", "", "")
	})
	return token, s, err
}

const failedLoginsQuery = `SELECT count(*) FROM audit WHERE who = ? AND action = 'login-failed' AND at > ?
	AND id > coalesce((SELECT max(id) FROM audit WHERE who = ? AND action = 'login'), 0)`

// failedLogins counts name's failed sign-ins in the LockoutWindow before now, after its
// last success (the audit log is the record, so the count survives a restart).
func (d *DB) failedLogins(name string, now time.Time) (int, error) {
	var n int
	err := d.sql.QueryRow(failedLoginsQuery, name, ts(now.Add(-LockoutWindow)), name).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count failed sign-ins of %s: %w", name, err)
	}
	return n, nil
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// sessionSeenEvery is how stale a session's last use may be before Session writes it
// again (not a write for every page).
const sessionSeenEvery = time.Minute

// Session returns the live session of a cookie's token: one past SessionTTL, or unused for
// SessionIdle, is ended.
func (d *DB) Session(token string) (Session, error) {
	var s Session
	var exp, created, seen string
	th := tokenHash(token)
	err := d.sql.QueryRow(`SELECT s.user, u.role, s.csrf, s.expires, s.created, s.seen FROM sessions s JOIN users u ON u.name = s.user
		WHERE s.token_hash = ?`, th).Scan(&s.User, &s.Role, &s.CSRF, &exp, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return s, ErrNotFound
	}
	if err != nil {
		return s, err
	}
	s.Expires = parseTS(exp)
	now := d.now()
	last := parseTS(seen)
	if last.IsZero() {
		last = parseTS(created)
	}
	if !now.Before(s.Expires) || now.Sub(last) >= SessionIdle {
		if _, err := d.sql.Exec(`DELETE FROM sessions WHERE token_hash = ?`, th); err != nil {
			return Session{}, fmt.Errorf("end session of %s: %w", s.User, err)
		}
		return Session{}, ErrNotFound
	}
	if now.Sub(last) >= sessionSeenEvery {
		if _, err := d.sql.Exec(`UPDATE sessions SET seen = ? WHERE token_hash = ?`, ts(now), th); err != nil {
			return Session{}, fmt.Errorf("session of %s: %w", s.User, err)
		}
	}
	return s, nil
}

// Logout ends a session.
func (d *DB) Logout(token, who string) error {
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error {
		if _, err := t.Exec(`DELETE FROM sessions WHERE token_hash = ?`, tokenHash(token)); err != nil {
			return err
		}
		return audit(t, now, who, "logout", "", "")
	})
}

// audit writes one line of the audit log inside t.
func audit(t *sql.Tx, at, who, action, target, detail string) error {
	_, err := t.Exec(`INSERT INTO audit (at, who, action, target, detail) VALUES (?, ?, ?, ?, ?)`, at, who, action, target, detail)
	return err
}

// Audit writes one line of the audit log: who did what to what, now.
func (d *DB) Audit(who, action, target, detail string) error {
	now := ts(d.now())
	return d.tx(func(t *sql.Tx) error { return audit(t, now, who, action, target, detail) })
}

// AuditLine is one line of the audit log.
type AuditLine struct {
	ID                          int64
	At                          time.Time
	Who, Action, Target, Detail string
}

// AuditLog returns the newest lines first, at most limit, those whose action starts with
// prefix when it is set.
func (d *DB) AuditLog(prefix string, limit int) ([]AuditLine, error) {
	rows, err := d.sql.Query(`SELECT id, at, who, action, target, detail FROM audit
		WHERE ? = '' OR substr(action, 1, length(?)) = ? ORDER BY id DESC LIMIT ?`, prefix, prefix, prefix, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditLine
	for rows.Next() {
		var l AuditLine
		var at string
		if err := rows.Scan(&l.ID, &at, &l.Who, &l.Action, &l.Target, &l.Detail); err != nil {
			return nil, err
		}
		l.At = parseTS(at)
		out = append(out, l)
	}
	return out, rows.Err()
}
