package camlink

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckName(t *testing.T) {
	long := strings.Repeat("a", MaxComponent)
	tests := []struct {
		name string
		ok   bool
	}{
		{"VID_0001.MP4", true},
		{"DCIM/100MEDIA/VID_0002.MP4", true},
		{"RECORD/REC_20240101_120000.WAV", true},
		{"PHOTO/IMG 0001.JPG", true},
		{"Aufnahme/Einsatz-Größe.mp4", true},
		{"..hidden/..x", true}, // dots inside a component are a name, not a step
		{long + "/" + long, true},
		{strings.Repeat("d/", MaxDepth-1) + "f", true},
		{"", false},
		{"/etc/passwd", false},
		{"../etc/passwd", false},
		{"DCIM/../../etc", false},
		{"DCIM/./VID.MP4", false},
		{".", false},
		{"..", false},
		{"DCIM//VID.MP4", false},
		{"DCIM/", false},
		{"DCIM\\VID.MP4", false},
		{"VID\x00.MP4", false},
		{"VID\n.MP4", false},
		{"VID\x7f.MP4", false},
		{"VID\xff.MP4", false},
		{long + "a", false},
		{strings.Repeat("d/", MaxDepth) + "f", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadName) {
				t.Fatalf("CheckName(%q) = %v, not ErrBadName", tc.name, err)
			}
		})
	}
}

func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"VID_0001.MP4", "DCIM/100MEDIA/VID_0002.MP4", "../x", "/a", "a//b", "a/./b", "a\\b", "a\x00", "\xff", strings.Repeat("a/", 9)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckName(name) != nil {
			return
		}
		// What passes stays beneath the directory it is joined to, is already clean, and
		// holds nothing a path or a log line could misread.
		if !filepath.IsLocal(name) || filepath.Clean(name) != name {
			t.Fatalf("accepted %q: not local or not clean", name)
		}
		if j := filepath.Join("/mnt/bay0", name); !strings.HasPrefix(j, "/mnt/bay0/") {
			t.Fatalf("accepted %q: joins to %q", name, j)
		}
		if !utf8.ValidString(name) || strings.ContainsAny(name, "\\\x00\x7f") {
			t.Fatalf("accepted %q", name)
		}
		comps := strings.Split(name, "/")
		if len(comps) > MaxDepth {
			t.Fatalf("accepted %q: %d components", name, len(comps))
		}
		for _, c := range comps {
			if c == "" || c == "." || c == ".." || len(c) > MaxComponent {
				t.Fatalf("accepted %q: component %q", name, c)
			}
			for _, b := range []byte(c) {
				if b < 0x20 || b == 0x7f {
					t.Fatalf("accepted %q: control byte", name)
				}
			}
		}
	})
}
