package camlink

import (
	"encoding/json"
	"fmt"
	"time"
)

// Code names a command; a reply carries the command's code with the high bit set, or
// CodeError.
type Code uint8

const (
	CodeIdentify Code = 0x01
	CodeBattery  Code = 0x02
	CodeStorage  Code = 0x03
	CodeList     Code = 0x04
	CodeAuth     Code = 0x05
	CodeDelete   Code = 0x06
	CodeSetClock Code = 0x07
	CodeLock     Code = 0x08
	CodeUnlock   Code = 0x09
	CodeError    Code = 0xFF
	replyBit     Code = 0x80
)

// Reply returns the code of the reply to c.
func (c Code) Reply() Code { return c | replyBit }

func (c Code) String() string {
	switch c &^ replyBit {
	case CodeIdentify:
		return "identify"
	case CodeBattery:
		return "battery"
	case CodeStorage:
		return "storage"
	case CodeList:
		return "list"
	case CodeAuth:
		return "auth"
	case CodeDelete:
		return "delete"
	case CodeSetClock:
		return "set-clock"
	case CodeLock:
		return "lock"
	case CodeUnlock:
		return "unlock"
	}
	if c == CodeError {
		return "error"
	}
	return fmt.Sprintf("code-%#02x", uint8(c))
}

// Identity is the reply to identify.
type Identity struct {
	Serial   string `json:"serial"`
	Model    string `json:"model"`
	Firmware string `json:"firmware"`
	Officer  string `json:"officer"`
	Unit     string `json:"unit"`
	Locked   bool   `json:"locked"`
}

// Battery is the reply to battery.
type Battery struct {
	ChargePct int  `json:"charge_pct"`
	VoltageMV int  `json:"voltage_mv"`
	TempDeciC int  `json:"temp_dc"` // tenths of a degree Celsius
	Cycles    int  `json:"cycles"`
	FullMAh   int  `json:"full_mah"`
	DesignMAh int  `json:"design_mah"`
	Charging  bool `json:"charging"`
}

// Storage is the reply to storage.
type Storage struct {
	CapacityBytes int64 `json:"capacity"`
	FreeBytes     int64 `json:"free"`
	BadBlocks     int   `json:"bad_blocks"`
	WearPct       int   `json:"wear_pct"`
	Errors        int   `json:"errors"`
}

// ListRequest asks for one page of the camera's recordings.
type ListRequest struct {
	Offset int `json:"offset"`
}

// ListPage is one page of recordings as the camera sends it; Total counts all of them.
// Offset, optional, echoes the request's. The dock checks each entry on its own
// (CheckEntry) and the pages against each other (Link.List).
type ListPage struct {
	Total      int         `json:"total"`
	Offset     *int        `json:"offset,omitempty"`
	Recordings []FileEntry `json:"recordings"`
}

// FileEntry describes one recording on the camera. Name is its path relative to the
// camera's storage root, '/'-separated (CheckName). Mark is the officer's mark-button
// reason ("" when unmarked; otherwise dispute, obstruction, mass-incident or other).
type FileEntry struct {
	Name  string    `json:"name"`
	Size  int64     `json:"size"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Mark  string    `json:"mark,omitempty"`
}

// AuthRequest unlocks the camera's storage (mass-storage mode).
type AuthRequest struct {
	Password string `json:"password"`
}

// DeleteRequest frees one recording on the camera; Size must match the camera's.
type DeleteRequest struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// SetClockRequest sets the camera's clock.
type SetClockRequest struct {
	UnixMilli int64 `json:"unix_ms"`
}

// SetClockReply reports how far the camera's clock was off before it was set
// (camera minus dock).
type SetClockReply struct {
	DriftMilli int64 `json:"drift_ms"`
}

// LockRequest takes the camera out of service with a reason shown on its screen.
type LockRequest struct {
	Reason string `json:"reason"`
}

// Empty is the payload of commands and replies that carry nothing.
type Empty struct{}

// ErrorReply is the payload of a CodeError reply.
type ErrorReply struct {
	Message string `json:"error"`
}

// Decode parses a payload into v and checks its values, so a garbled but CRC-valid
// payload cannot pass as a reading.
func Decode(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	if c, ok := v.(interface{ Check() error }); ok {
		if err := c.Check(); err != nil {
			return fmt.Errorf("decode %T: %w", v, err)
		}
	}
	return nil
}

// Check rejects an identity the dock cannot file recordings under.
func (i *Identity) Check() error {
	if !ValidName(i.Serial) {
		return fmt.Errorf("device serial %q is not 1-64 letters, digits, '-' or '_'", i.Serial)
	}
	return nil
}

// Check rejects readings outside what a camera battery can report.
func (b *Battery) Check() error {
	switch {
	case b.ChargePct < 0 || b.ChargePct > 100:
		return fmt.Errorf("charge %d%% out of range", b.ChargePct)
	case b.DesignMAh <= 0 || b.FullMAh < 0:
		return fmt.Errorf("capacity %d/%d mAh invalid", b.FullMAh, b.DesignMAh)
	case b.Cycles < 0 || b.VoltageMV < 0:
		return fmt.Errorf("negative cycles or voltage")
	case b.TempDeciC < -600 || b.TempDeciC > 1500:
		return fmt.Errorf("temperature %d dC out of range", b.TempDeciC)
	}
	return nil
}

// Check rejects storage figures that contradict each other.
func (s *Storage) Check() error {
	if s.CapacityBytes < 0 || s.FreeBytes < 0 || s.FreeBytes > s.CapacityBytes || s.BadBlocks < 0 || s.Errors < 0 || s.WearPct < 0 || s.WearPct > 100 {
		return fmt.Errorf("storage figures out of range: %+v", *s)
	}
	return nil
}

// ValidMark reports whether m is a known mark-button reason ("" is unmarked).
func ValidMark(m string) bool {
	switch m {
	case "", "dispute", "obstruction", "mass-incident", "other":
		return true
	}
	return false
}

// ValidName is the fleet's rule for a name: a camera's serial, an officer's id, a dock's id.
// 1 to 64 letters, digits, '-' or '_'.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
