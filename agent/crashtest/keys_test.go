package crashtest

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

// centralKey is central's signing key for one test: the key itself (for a central run in
// the test's process), a file holding its seed (central -signing-key), and its public half
// as a dock's central_key (docksim -central-key). Docks refuse whatever central does not
// sign.
type centralKey struct {
	Private ed25519.PrivateKey
	File    string
	Public  string
}

func newCentralKey(t *testing.T, dir string) centralKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k := centralKey{Private: priv, File: filepath.Join(dir, "central.key"), Public: base64.StdEncoding.EncodeToString(pub)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.File, []byte(base64.StdEncoding.EncodeToString(priv.Seed())), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}
