package durable

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSync(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		ok         bool
	}{
		{"directory", dir, true},
		{"file", file, true},
		{"missing", filepath.Join(dir, "none"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Sync(tc.path); (err == nil) != tc.ok {
				t.Fatalf("Sync(%s) = %v, want ok %v", tc.path, err, tc.ok)
			}
		})
	}
}
