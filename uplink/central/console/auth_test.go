package console

import "testing"

// After signing in a person goes to the page they asked for, never to another site.
func TestLocalPath(t *testing.T) {
	for next, want := range map[string]string{
		"/faults":               "/faults",
		"/evidence?officer=O-1": "/evidence?officer=O-1",
		"":                      "/",
		"//evil.example/x":      "/",
		"/\\evil.example":       "/",
		"https://evil.example/": "/",
		"evil.example":          "/",
		"/x\r\nSet-Cookie: a=b": "/",
	} {
		if got := localPath(next); got != want {
			t.Errorf("localPath(%q) = %q, want %q", next, got, want)
		}
	}
}
