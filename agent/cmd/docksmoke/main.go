// Command docksmoke checks a real dock's wiring on the board itself, outside go test: it
// states what it expects, refuses a board that is not the named one, then reads every
// presence line, blinks every fault LED, and asks every seated camera who it is.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"periph.io/x/host/v3"

	"dock/board"
	"dock/hw"
	"dock/hw/camlink"
	"log/slog"
)

func main() {
	name := flag.String("board", "", "board definition: "+strings.Join(board.Names(), ", "))
	model := flag.String("model-file", "/proc/device-tree/model", "where the board says what it is")
	flag.Parse()
	b, err := board.Lookup(*name)
	if err != nil {
		fail(err)
	}
	fmt.Printf("board %s: %s\nexpects, per bay:\n", b.Name, b.Description)
	for i, s := range b.Slots {
		fmt.Printf("  bay %d: presence %s (input, high = camera seated), charge %s (output, high = charger on), fault LED %s (output, high = lit), camera serial %s, storage at %s\n",
			i, s.Presence, s.Charge, s.Fault, s.Serial, s.Mount)
	}
	m, err := os.ReadFile(*model)
	if err != nil {
		fail(fmt.Errorf("cannot read %s to confirm the board: %w", *model, err))
	}
	if !strings.Contains(string(m), b.Model) {
		fail(fmt.Errorf("this is %q, not a %s (%q): refusing to drive its pins", strings.TrimRight(string(m), "\x00\n"), b.Name, b.Model))
	}
	if _, err := host.Init(); err != nil {
		fail(err)
	}
	failed := false
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for i, s := range b.Slots {
		lines, err := hw.LookupLines(s.Presence, s.Charge, s.Fault)
		if err != nil {
			fmt.Printf("bay %d: FAIL %v\n", i, err)
			failed = true
			continue
		}
		if err := lines.Init(); err != nil {
			fmt.Printf("bay %d: FAIL %v\n", i, err)
			failed = true
			continue
		}
		seated := lines.Presence.Read()
		_ = lines.SetFault(true)
		time.Sleep(time.Second)
		_ = lines.SetFault(false)
		fmt.Printf("bay %d: presence %v; fault LED blinked (check it by eye)\n", i, seated)
		port, err := camlink.OpenSerial(s.Serial, s.Baud)
		if err != nil {
			fmt.Printf("bay %d: serial %s: %v\n", i, s.Serial, err)
			continue
		}
		link := camlink.NewLink(port, time.Second, 1, log)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		id, err := link.Identify(ctx)
		cancel()
		link.Close()
		if err != nil {
			fmt.Printf("bay %d: no camera answered: %v\n", i, err)
		} else {
			fmt.Printf("bay %d: camera %s (%s, firmware %s)\n", i, id.Serial, id.Model, id.Firmware)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "docksmoke:", err)
	os.Exit(1)
}
