// Package secret owns reading the agent's secret files (the spool key, the broker's TLS
// key, the fleet's camera secret): each is refused unless only the agent can read and change it.
package secret

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// ReadFile reads a secret the agent holds (the spool key, the broker TLS key, the
// fleet's camera secret) after checking, on the open file, that no one but the agent can
// read or change it: a file readable or writable by group or others (mode & 0o077), or
// owned by another user than the agent's, is refused with its name and mode. A key that
// others could read is a key an intruder may already hold; one they could write is one
// they could swap for theirs.
//
// Where each secret lives on a real board: on the root filesystem (/etc/dock-agent, as
// the package installs it) or on a partition of its own, never on the spool's medium, so
// that a card or disk pulled from the dock carries footage but never the key to it.
func ReadFile(what, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	if err := CheckFile(what, path, f); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return b, nil
}

// CheckFile is ReadFile's check on an open file f named path.
func CheckFile(what, path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s: not a regular file (%s)", what, path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s %s: mode %04o lets group or others at it: chmod 600 it (and make a new key if others could have read it)", what, path, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %s: owned by uid %d, not the agent's uid %d (mode %04o): chown it to the agent's user", what, path, st.Uid, os.Geteuid(), fi.Mode().Perm())
	}
	return nil
}
