package agent

import (
	"bytes"
	"context"
	"fmt"

	"dock/hw/camlink"
	"dock/queue/secret"
)

// minCameraSecret is the shortest fleet camera secret accepted (bytes, after trimming).
const minCameraSecret = 16

// loadCameraSecret reads the fleet camera secret from path: the agent's alone
// (secret.ReadFile), surrounding white space trimmed, at least 16 bytes.
func loadCameraSecret(path string) ([]byte, error) {
	b, err := secret.ReadFile("camera secret (camera_secret_file)", path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) < minCameraSecret {
		return nil, fmt.Errorf("camera secret %s: %d bytes, want at least %d", path, len(b), minCameraSecret)
	}
	return b, nil
}

// cameraPassword is the storage password for the camera that identified itself with
// serial: with camera_secret_file set, camlink.StoragePassword of the serial under the
// fleet secret (read afresh, so a secret central rotates takes effect at the next
// docking); without it, the fleet-wide camera_password, for cameras not yet provisioned.
// A set but unreadable secret file is an error: the fleet password is never sent instead.
func (c Config) cameraPassword(serial string) (string, error) {
	if c.CameraSecretFile == "" {
		return c.CameraPassword, nil
	}
	if serial == "" {
		return "", fmt.Errorf("camera gave no serial: no password derived")
	}
	secret, err := loadCameraSecret(c.CameraSecretFile)
	if err != nil {
		return "", err
	}
	return camlink.StoragePassword(secret, serial), nil
}

// unlockStorage sends the camera its storage password. It is called only once the camera
// has identified itself (slot.offload runs after Identify), with the serial it gave.
func unlockStorage(ctx context.Context, link cameraLink, cfg Config, serial string) error {
	pw, err := cfg.cameraPassword(serial)
	if err != nil {
		return fmt.Errorf("storage password: %w", err)
	}
	return link.Auth(ctx, pw)
}
