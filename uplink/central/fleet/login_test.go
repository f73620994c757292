package fleet

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A password guesser gets MaxFailedLogins tries per name in LockoutWindow; then even the
// right password is refused until the window has passed, across a restart of central (the
// count is the audit log's). A name that does not exist is locked the same way.
func TestLoginLockoutAfterFailedGuesses(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	db.UseClock(clock)
	pw, err := db.AddUser("alice", RoleAdmin, "setup")
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxFailedLogins {
		if _, _, err := db.Login("alice", "guess"); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("guess %d: %v, want ErrBadLogin", i, err)
		}
		if _, _, err := db.Login("nobody", "guess"); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("guess %d at an unknown name: %v, want ErrBadLogin", i, err)
		}
	}
	db.Close()
	if db, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.UseClock(clock)
	for _, name := range []string{"alice", "nobody"} {
		if _, _, err := db.Login(name, pw); !errors.Is(err, ErrLockedOut) {
			t.Fatalf("%s's login after %d failures: %v, want ErrLockedOut", name, MaxFailedLogins, err)
		}
	}
	if lines, _ := db.AuditLog("login-locked", 10); len(lines) != 2 {
		t.Fatalf("refusals while locked audited %d times, want 2", len(lines))
	}
	now = now.Add(LockoutWindow + time.Second)
	if _, _, err := db.Login("alice", pw); err != nil {
		t.Fatalf("login once the window passed: %v", err)
	}
	// A success starts the count again.
	if _, _, err := db.Login("alice", "guess"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("a guess after the success: %v", err)
	}
	if _, _, err := db.Login("alice", pw); err != nil {
		t.Fatalf("login after one failure: %v", err)
	}
}

// A name that does not exist costs the same argon2id derivation as a wrong password, so
// the time of an answer does not tell who has an account.
func TestLoginTimingDoesNotTellUnknownNames(t *testing.T) {
	db := openTest(t)
	if _, err := db.AddUser("alice", RoleAdmin, "setup"); err != nil {
		t.Fatal(err)
	}
	timed := func(name string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			_, _, _ = db.Login(name, "guess")
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := timed("alice"), timed("nobody")
	if unknown < known/3 {
		t.Fatalf("a wrong password for alice took %v, for an unknown name %v: the time tells who exists", known, unknown)
	}
}

// A name locked out still costs a derivation per attempt: refusals come no faster than
// guesses did (each is an audit line), and their time tells nothing the answer does not.
func TestLockedOutAttemptsCostADerivation(t *testing.T) {
	db := openTest(t)
	if _, err := db.AddUser("alice", RoleAdmin, "setup"); err != nil {
		t.Fatal(err)
	}
	guess := func() time.Duration {
		start := time.Now()
		_, _, _ = db.Login("alice", "guess")
		return time.Since(start)
	}
	failed := time.Hour
	for range MaxFailedLogins {
		failed = min(failed, guess())
	}
	locked := time.Hour
	for range 3 {
		locked = min(locked, guess())
	}
	if locked < failed/3 {
		t.Fatalf("a failed guess took %v, a refusal while locked %v", failed, locked)
	}
}

// Counting a name's failed sign-ins reads the audit log through its index, not the whole
// log (which grows with every action for years).
func TestFailedLoginsUseTheAuditIndex(t *testing.T) {
	db := openTest(t)
	rows, err := db.sql.Query(`EXPLAIN QUERY PLAN `+failedLoginsQuery, "alice", ts(time.Now()), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	for _, step := range plan {
		if strings.Contains(step, " audit") && !strings.Contains(step, "INDEX audit_who_action") {
			t.Fatalf("the count reads the audit log without its index (who, action): %q", plan)
		}
	}
}

// A console left open on a squad-room PC does not stay signed in for the whole
// SessionTTL: a session unused for SessionIdle ends; one in use lasts.
func TestSessionEndsWhenIdle(t *testing.T) {
	db := openTest(t)
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	db.UseClock(func() time.Time { return now })
	pw, err := db.AddUser("alice", RoleMaintenance, "setup")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := db.Login("alice", pw)
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []time.Duration{SessionIdle - time.Minute, SessionIdle - time.Minute, SessionIdle - time.Minute} {
		now = now.Add(step)
		if _, err := db.Session(token); err != nil {
			t.Fatalf("in use, step %d (%v after sign-in): %v", i, now.Sub(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)), err)
		}
	}
	now = now.Add(SessionIdle + time.Second)
	if _, err := db.Session(token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unused for %v: %v, want ErrNotFound", SessionIdle+time.Second, err)
	}
	now = now.Add(-SessionIdle) // even if the clock steps back, the idle session is gone
	if _, err := db.Session(token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an idle-ended session came back: %v", err)
	}
}
