package queue

import (
	"dock/queue/secret"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// LoadKey reads the dock's age identity from path, creating it (mode 0600) if absent. An
// existing key file must pass secret.ReadFile's check (mode 0600 or stricter, owned by the
// agent's user); path belongs on the root filesystem or a partition of its own, never on
// the spool's medium.
func LoadKey(path string) (*age.X25519Identity, error) {
	b, err := secret.ReadFile("dock key", path)
	if errors.Is(err, os.ErrNotExist) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, fmt.Errorf("dock key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("dock key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("dock key: %w", err)
		}
		if _, err := fmt.Fprintln(f, id.String()); err != nil {
			f.Close()
			return nil, fmt.Errorf("dock key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("dock key: %w", err)
		}
		return id, f.Close()
	}
	if err != nil {
		return nil, err
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("dock key %s: %w", path, err)
	}
	return id, nil
}
