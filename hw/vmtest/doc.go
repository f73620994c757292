// Package vmtest owns the emulated arm64 dock board: the real hw package on a real Linux
// kernel under qemu-system-aarch64, GPIO from gpio-sim, cameras on emulated UARTs. Test only.
package vmtest

// Checks are the names of the guest's checks (guestinit), in the order it runs them. The
// guest prints one "PASS <name> <detail>" or "FAIL <name> <detail>" line per check.
var Checks = []string{
	"modules",              // configfs and gpio-sim loaded from their .ko.xz
	"gpio-sim-chip",        // the board's bays laid out on a simulated chip, listed by periph
	"lookup",               // hw.LookupLines finds every bay's lines by the board's names
	"init-safe-state",      // SlotLines.Init leaves chargers and LEDs off
	"outputs",              // charge and fault lines set through hw, read back from the simulator
	"presence-at-start",    // a camera docked before Init is seen, and Init does not disturb it
	"presence-edges",       // edges raised by the simulator reach WatchPresence (no polling)
	"debounce-bounce",      // a line toggling faster than the debounce reports nothing
	"debounce-hold",        // then held: exactly one change reported, after the debounce
	"watch-cancel",         // cancelling a watch closes its channel
	"uart-camera",          // camlink over the emulated 16550: identify, battery, storage, list, clock
	"uart-garbage-between", // noise between the camera's frames: calls succeed, noise counted
	"uart-garbage-camera",  // a camera answering only garbage: ErrNoReply in bounded time
	"uart-silent-camera",   // a camera that never answers: ErrNoReply in bounded time, Close prompt
}

// Done is the line the guest prints last, before it powers off.
const Done = "VMTEST DONE"
