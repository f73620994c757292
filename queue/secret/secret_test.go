package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFileRefusesOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another user")
	}
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile("secret", path); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("file of another owner: %v", err)
	}
}

func TestReadFileRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	if _, err := ReadFile("secret", dir); err == nil {
		t.Fatal("a directory read as a secret")
	}
}
