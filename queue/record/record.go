// Package record owns the values the queue keeps about a recording: its states and the one
// transition function over them, its class and holds, and the queue's summary. It does no I/O.
//
// It stands apart from package queue so that a program that only shows these values (dockctl,
// reading the agent's control socket) links no database.
package record

import (
	"fmt"
	"strings"
	"time"
)

// State is where a recording is in its life on the dock.
type State string

const (
	// Spooled: durable in the spool, waiting to be uploaded.
	Spooled State = "spooled"
	// Uploading: leased to one transfer.
	Uploading State = "uploading"
	// Verified: central's receipt carried the same SHA-256; the spool copy may be freed
	// unless a hold forbids it.
	Verified State = "verified"
	// Freed: the spool copy is gone; central holds the only copy.
	Freed State = "freed"
)

// Step is something that happens to a recording.
type Step string

const (
	StepLease   Step = "lease"   // a transfer takes it
	StepRelease Step = "release" // the transfer ended without a receipt
	StepVerify  Step = "verify"  // central's matching receipt
	StepFree    Step = "free"    // the spool copy is deleted
)

// Next is the one transition function over recording states. A step that is not allowed
// from s is an error, and nothing changes.
func Next(s State, step Step) (State, error) {
	switch {
	case s == Spooled && step == StepLease:
		return Uploading, nil
	case s == Uploading && step == StepRelease:
		return Spooled, nil
	case (s == Uploading || s == Spooled || s == Verified) && step == StepVerify:
		return Verified, nil
	case s == Verified && step == StepFree:
		return Freed, nil
	}
	return s, fmt.Errorf("recording: %s not allowed while %s", step, s)
}

// Class is a recording's retention class (article 12).
type Class string

const (
	Patrol   Class = "patrol"   // daily patrol: kept at central >= 6 months
	Evidence Class = "evidence" // kept with its case file
)

// Hold reasons (article 13). A held recording uploads first and is never freed on the dock
// before central releases the hold.
const (
	HoldDispute      = "dispute"
	HoldObstruction  = "obstruction"
	HoldMassIncident = "mass-incident"
	HoldOther        = "other"
)

// ValidHold reports whether h is "" (no hold) or a known reason.
func ValidHold(h string) bool {
	switch h {
	case "", HoldDispute, HoldObstruction, HoldMassIncident, HoldOther:
		return true
	}
	return false
}

// Recording is one camera file as the dock knows it (article 17 fields included).
type Recording struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"` // file name on the camera
	Device   string    `json:"device"`
	Officer  string    `json:"officer"`
	Team     string    `json:"team"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Class    Class     `json:"class"`
	Hold     string    `json:"hold,omitempty"`
	Released bool      `json:"hold_released,omitempty"`
	Party    string    `json:"party,omitempty"`
	Case     string    `json:"case,omitempty"`
	// ClockDrift is the camera clock's offset (camera minus dock) measured at docking.
	ClockDrift time.Duration `json:"clock_drift,omitempty"`
	// ClockUnverified: the dock's clock was not trusted when it took the recording (see
	// health.CheckClock): its own times on the record may be wrong.
	ClockUnverified bool `json:"clock_unverified,omitempty"`

	State      State     `json:"state"`
	Transfer   string    `json:"transfer,omitempty"` // the lease holder while Uploading
	Acked      int64     `json:"acked,omitempty"`    // bytes central acknowledged
	SpooledAt  time.Time `json:"spooled_at"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
}

// Freeable reports whether the dock may delete its copy now.
func (r Recording) Freeable() bool {
	return r.State == Verified && (r.Hold == "" || r.Released)
}

// Stats summarise the queue.
type Stats struct {
	Count  map[State]int   `json:"count"`
	Bytes  map[State]int64 `json:"bytes"`
	Oldest time.Time       `json:"oldest,omitzero"` // oldest recording not yet verified
	// Waiting counts recordings not yet verified by upload class: hold, evidence, patrol.
	Waiting map[string]int `json:"waiting"`
}

// MaxIDLen is the longest recording, dock or device id: an id is a file name on the dock's
// spool and at central, and a key in the dock's Badger.
const MaxIDLen = 200

// CheckID accepts an id that is safe as a file name, a key, and in a .sha256 line
// ("hash  id", checked by sha256sum -c): 1 to MaxIDLen bytes of [A-Za-z0-9._-], not
// starting with '.' (so never ".", ".." or a temporary name). No separator, space,
// newline or other control byte, nothing outside ASCII. The dock's spool and central's
// store both take ids by this rule.
func CheckID(s string) error {
	if s == "" || len(s) > MaxIDLen || strings.HasPrefix(s, ".") {
		return fmt.Errorf("unsafe name %s: want 1-%d of [A-Za-z0-9._-], not starting with '.'", QuoteShort(s), MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("unsafe name %s: byte %#02x at %d is not one of [A-Za-z0-9._-]", QuoteShort(s), c, i)
		}
	}
	return nil
}

// QuoteShort quotes s for a message, cut short past MaxIDLen bytes.
func QuoteShort(s string) string {
	if len(s) > MaxIDLen {
		return fmt.Sprintf("%q... (%d bytes)", s[:MaxIDLen], len(s))
	}
	return fmt.Sprintf("%q", s)
}
