package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"dock/board"
)

func loadModules() error {
	for _, m := range []string{"configfs", "gpio-sim"} {
		f, err := os.Open("/lib/modules/" + m + ".ko.xz")
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", unix.MODULE_INIT_COMPRESSED_FILE)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	if err := unix.Mount("configfs", "/sys/kernel/config", "configfs", 0, ""); err != nil {
		return fmt.Errorf("mount configfs: %w", err)
	}
	return nil
}

// simChip is the gpio-sim chip the board's lines live on.
type simChip struct {
	dir string // /sys/devices/platform/<dev>/<chip>
}

// lineNumber is a CM4 pin name's BCM number: its offset on the simulated chip.
func lineNumber(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "GPIO"))
	if err != nil {
		panic("not a BCM pin name: " + name)
	}
	return n
}

func write(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

func read(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// makeChip lays the board's lines out on one simulated bank of 28 lines (the BCM2711's
// user GPIOs), each named as the board names it.
func makeChip(b board.Board) (*simChip, error) {
	base := "/sys/kernel/config/gpio-sim/dock"
	bank := base + "/bank0"
	if err := os.MkdirAll(bank, 0o755); err != nil {
		return nil, err
	}
	if err := write(bank+"/num_lines", "28"); err != nil {
		return nil, err
	}
	if err := write(bank+"/label", "dock-sim"); err != nil {
		return nil, err
	}
	for _, s := range b.Slots {
		for _, name := range []string{s.Presence, s.Charge, s.Fault} {
			line := fmt.Sprintf("%s/line%d", bank, lineNumber(name))
			if err := os.Mkdir(line, 0o755); err != nil {
				return nil, err
			}
			if err := write(line+"/name", name); err != nil {
				return nil, err
			}
		}
	}
	if err := write(base+"/live", "1"); err != nil {
		return nil, err
	}
	dev, err := read(base + "/dev_name")
	if err != nil {
		return nil, err
	}
	chip, err := read(bank + "/chip_name")
	if err != nil {
		return nil, err
	}
	return &simChip{dir: filepath.Join("/sys/devices/platform", dev, chip)}, nil
}

// pull drives an input line from the outside: a camera's contact closing (up) or open.
func (c *simChip) pull(name string, up bool) error {
	v := "pull-down"
	if up {
		v = "pull-up"
	}
	return write(fmt.Sprintf("%s/sim_gpio%d/pull", c.dir, lineNumber(name)), v)
}

// value reads a line's level as the simulator sees it: what an output drives.
func (c *simChip) value(name string) (string, error) {
	return read(fmt.Sprintf("%s/sim_gpio%d/value", c.dir, lineNumber(name)))
}
