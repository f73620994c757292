package health

import (
	"fmt"
	"sort"
	"time"
)

// Dock fault codes: conditions of the dock itself and of article-11 compliance.
const (
	BrokerUnreachable Code = "broker-unreachable"
	BacklogStale      Code = "backlog-stale" // footage older than the limit still on the dock
	NotDocked         Code = "not-docked"    // a device central knows has not docked in time
	BoardHot          Code = "board-over-temperature"
	// ClockUnverified: the dock's clock cannot be trusted to stamp evidence or set camera
	// clocks (before the build, before the ledger's newest entry, or not synchronised).
	ClockUnverified Code = "clock-unverified"
)

// Clock is what the dock knows of its own clock.
type Clock struct {
	Now time.Time
	// Floor is the earliest plausible time: the build's time, or the newest ledger entry
	// written before this run if later.
	Floor time.Time
	// FloorFrom names where Floor came from, for the fault's detail.
	FloorFrom string
	// Synced is the system's word on synchronisation (timesyncd, the kernel's NTP state);
	// nil where the system cannot say.
	Synced *bool
}

// CheckClock reports whether the dock's clock may stamp evidence and set camera clocks,
// and if not, why.
func CheckClock(c Clock) (ok bool, why string) {
	if c.Synced != nil && !*c.Synced {
		return false, fmt.Sprintf("clock at %s is not synchronised", c.Now.Format(time.RFC3339))
	}
	if c.Now.Before(c.Floor) {
		return false, fmt.Sprintf("clock at %s is before %s (%s)", c.Now.Format(time.RFC3339), c.Floor.Format(time.RFC3339), c.FloorFrom)
	}
	return true, ""
}

// DockLimits are the dock-level limits.
type DockLimits struct {
	BrokerDown   time.Duration `json:"broker_down"`
	BacklogAge   time.Duration `json:"backlog_age"`
	DockInterval time.Duration `json:"dock_interval"`
	MaxBoardC    float64       `json:"max_board_c"`
}

// DefaultDockLimits follow article 11 (offload every working day).
func DefaultDockLimits() DockLimits {
	return DockLimits{BrokerDown: 30 * time.Minute, BacklogAge: 24 * time.Hour, DockInterval: 24 * time.Hour, MaxBoardC: 80}
}

// DockReading is what the dock knows of itself at Now.
type DockReading struct {
	Now           time.Time
	BrokerDownFor time.Duration        // 0 while connected
	OldestPending time.Time            // zero when nothing waits
	BoardC        *float64             // nil where the board has no sensor
	LastDocked    map[string]time.Time // devices central assigned, with their last docking (zero: never seen here)
	Since         time.Time            // when this dock started watching (no device is late before Since+interval)
	Clock         Clock
}

// DockVerdict is a dock-level fault; Device names the device for not-docked, else "".
type DockVerdict struct {
	Code   Code
	Device string
	Detail string
}

// EvaluateDock applies the dock-level rules.
func EvaluateDock(r DockReading, l DockLimits) []DockVerdict {
	var out []DockVerdict
	if r.BrokerDownFor > l.BrokerDown {
		out = append(out, DockVerdict{Code: BrokerUnreachable, Detail: fmt.Sprintf("broker unreachable for %s (limit %s)", r.BrokerDownFor.Round(time.Second), l.BrokerDown)})
	}
	if !r.OldestPending.IsZero() && r.Now.Sub(r.OldestPending) > l.BacklogAge {
		out = append(out, DockVerdict{Code: BacklogStale, Detail: fmt.Sprintf("oldest recording waiting since %s (limit %s)", r.OldestPending.Format(time.RFC3339), l.BacklogAge)})
	}
	if r.BoardC != nil && *r.BoardC > l.MaxBoardC {
		out = append(out, DockVerdict{Code: BoardHot, Detail: fmt.Sprintf("board at %.1f C (limit %.1f C)", *r.BoardC, l.MaxBoardC)})
	}
	if !r.Clock.Now.IsZero() {
		if ok, why := CheckClock(r.Clock); !ok {
			out = append(out, DockVerdict{Code: ClockUnverified, Detail: why + ": camera clocks are not set and recordings are stamped clock unverified"})
		}
	}
	devices := make([]string, 0, len(r.LastDocked))
	for d := range r.LastDocked {
		devices = append(devices, d)
	}
	sort.Strings(devices)
	for _, d := range devices {
		last := r.LastDocked[d]
		ref := last
		if ref.IsZero() || ref.Before(r.Since) {
			ref = r.Since
		}
		if r.Now.Sub(ref) > l.DockInterval {
			seen := "never docked here"
			if !last.IsZero() {
				seen = "last docked " + last.Format(time.RFC3339)
			}
			out = append(out, DockVerdict{Code: NotDocked, Device: d, Detail: fmt.Sprintf("%s: %s (article 11: offload every %s)", d, seen, l.DockInterval)})
		}
	}
	return out
}
