package queue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A spool key that group or others can read or write is refused, naming the file and mode.
func TestLoadKeyRefusesLooseKeyFile(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		want string // "" means accepted
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, "mode 0640"},
		{0o604, "mode 0604"},
		{0o620, "mode 0620"},
		{0o666, "mode 0666"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "spool.key")
			if _, err := LoadKey(path); err != nil { // made 0600 on first start
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKey(path)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("key file of mode %04o refused: %v", tc.mode, err)
			case tc.want != "" && err == nil:
				t.Fatalf("key file of mode %04o accepted", tc.mode)
			case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path)):
				t.Fatalf("error %q does not name the file and %q", err, tc.want)
			}
		})
	}
}
