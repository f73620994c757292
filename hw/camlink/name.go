package camlink

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bounds of a recording's name (PROTOCOL.md, "Recording names").
const (
	// MaxComponent is the longest component of a name, in bytes (FAT/exFAT and Linux
	// allow 255).
	MaxComponent = 255
	// MaxDepth is how many components a name may have (DCIM/100MEDIA/VID_0002.MP4 has 3).
	MaxDepth = 8
)

// ErrBadName is wrapped by every error of CheckName.
var ErrBadName = errors.New("recording name refused")

// CheckName reports why name cannot be a recording's name, or nil. A name is a path
// relative to the camera's storage root, components separated by '/': not empty, not
// absolute, no empty, "." or ".." component, no backslash, no control byte (below 0x20 or
// 0x7f), valid UTF-8, each component at most MaxComponent bytes, at most MaxDepth
// components. A name that passes stays beneath whatever directory it is joined to.
func CheckName(name string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadName, fmt.Sprintf(format, a...))
	}
	switch {
	case name == "":
		return bad("empty")
	case name[0] == '/':
		return bad("absolute path")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c < 0x20 || c == 0x7f:
			return bad("control byte %#02x at byte %d", c, i)
		case c == '\\':
			return bad("backslash at byte %d", i)
		}
	}
	depth := 0
	for comp := range strings.SplitSeq(name, "/") {
		depth++
		switch {
		case depth > MaxDepth:
			return bad("more than %d components", MaxDepth)
		case comp == "":
			return bad("empty component (a doubled or trailing '/')")
		case comp == "." || comp == "..":
			return bad("component %q", comp)
		case len(comp) > MaxComponent:
			return bad("component of %d bytes, over %d", len(comp), MaxComponent)
		}
	}
	return nil
}
