package central

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// LoadSigningKey reads central's Ed25519 signing key from a file holding its seed in
// base64 (as `central -gen-key` prints it).
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: not a base64 Ed25519 seed of %d bytes (%v)", path, ed25519.SeedSize, err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
