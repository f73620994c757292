package agent

import (
	"time"

	"dock/health"
)

// deviceDoc is what the dock keeps of a camera across dockings: its health history
// (reported to central in telemetry) and when it last docked here.
type deviceDoc struct {
	Serial     string          `json:"serial"`
	LastDocked time.Time       `json:"last_docked"`
	History    []health.Sample `json:"history"`
}

// maxHistory bounds a device's kept samples (one per docking: most of a year of shifts).
const maxHistory = 300

func (a *Agent) device(serial string) deviceDoc {
	d := deviceDoc{Serial: serial}
	if _, err := a.store.GetDoc("device", serial, &d); err != nil {
		a.log.Error("device history", "device", serial, "err", err)
	}
	return d
}

// recordDocking appends one sample to a device's history and stamps its docking time.
func (a *Agent) recordDocking(serial string, s health.Sample) {
	d := a.device(serial)
	d.LastDocked = s.Time
	d.History = append(d.History, s)
	if len(d.History) > maxHistory {
		d.History = d.History[len(d.History)-maxHistory:]
	}
	if err := a.store.PutDoc("device", serial, d); err != nil {
		a.log.Error("device history", "device", serial, "err", err)
	}
}
