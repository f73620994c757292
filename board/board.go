// Package board owns the dock boards as data: each board's slots, pin names, serial ports
// and camera storage mounts. It describes hardware and never drives it.
package board

import (
	"fmt"
	"io/fs"
	"sort"
)

// Slot is one camera bay: its three GPIO lines (periph.io names), the camera's serial port,
// and where the camera's storage appears once the camera has exposed it.
type Slot struct {
	Presence string // input, high while a camera is seated
	Charge   string // output, high powers the charger
	Fault    string // output, high lights the fault LED
	Serial   string // device path of the camera's serial link
	Baud     int
	Mount    string // directory where the camera's storage is mounted once unlocked
}

// Board is one dock board model.
type Board struct {
	Name        string
	Description string
	// Model is a substring of the device tree's model (/proc/device-tree/model) that
	// identifies the board; the smoke test refuses to drive pins on another board.
	Model string
	// Thermal is the sysfs file of the board's temperature in millidegrees, optional:
	// where it is absent the agent reports no board temperature and carries on.
	Thermal string
	Slots   []Slot
	// Open opens a file on a camera's mounted storage; nil means os.Open. The simulator
	// sets its own, which reads no faster than the camera's link.
	Open func(path string) (fs.File, error) `json:"-"`
}

var known = map[string]Board{}

func register(b Board) Board {
	if _, dup := known[b.Name]; dup {
		panic("board: duplicate " + b.Name)
	}
	known[b.Name] = b
	return b
}

// Lookup returns the named real board.
func Lookup(name string) (Board, error) {
	b, ok := known[name]
	if !ok {
		return Board{}, fmt.Errorf("unknown board %q (known: %v)", name, Names())
	}
	return b, nil
}

// Names lists the real boards, sorted.
func Names() []string {
	var n []string
	for k := range known {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Check reports a definition that cannot work: no slots, or a pin or port used twice.
func (b Board) Check() error {
	if len(b.Slots) == 0 {
		return fmt.Errorf("board %s: no slots", b.Name)
	}
	seen := map[string]int{}
	for i, s := range b.Slots {
		for _, name := range []string{s.Presence, s.Charge, s.Fault, s.Serial, s.Mount} {
			if name == "" {
				return fmt.Errorf("board %s slot %d: empty pin, port or mount", b.Name, i)
			}
			if j, dup := seen[name]; dup {
				return fmt.Errorf("board %s: %s used by slots %d and %d", b.Name, name, j, i)
			}
			seen[name] = i
		}
	}
	return nil
}
