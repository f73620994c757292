package fleet

import (
	"errors"
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
