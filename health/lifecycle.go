package health

import (
	"fmt"
	"time"
)

// FaultState is where a fault is in its life (article 21: stop using the device, report
// it, send it to professionals for repair).
type FaultState string

const (
	Raised       FaultState = "raised"       // found; the device is out of service
	Alerted      FaultState = "alerted"      // the alert reached the broker
	Acknowledged FaultState = "acknowledged" // maintenance saw it
	InRepair     FaultState = "sent-for-repair"
	Cleared      FaultState = "cleared" // returned from repair and cleared by central
)

// FaultEvent is something that happens to a fault.
type FaultEvent string

const (
	EvAlertSent FaultEvent = "alert-sent"
	EvAck       FaultEvent = "acknowledge"
	EvRepair    FaultEvent = "send-for-repair"
	EvClear     FaultEvent = "clear"
)

// NextFault is the one transition function of the fault lifecycle.
func NextFault(s FaultState, e FaultEvent) (FaultState, error) {
	switch {
	case e == EvAlertSent && (s == Raised || s == Alerted):
		return Alerted, nil
	case e == EvAck && (s == Raised || s == Alerted || s == Acknowledged):
		return Acknowledged, nil
	case e == EvRepair && (s == Acknowledged || s == InRepair):
		return InRepair, nil
	case e == EvClear && s != Cleared:
		return Cleared, nil
	}
	return s, fmt.Errorf("fault: %s not allowed while %s", e, s)
}

// Fault is one fault of one device.
type Fault struct {
	ID       string     `json:"id"` // device/code
	Device   string     `json:"device"`
	Slot     int        `json:"slot"`
	Code     Code       `json:"code"`
	Detail   string     `json:"detail"`
	State    FaultState `json:"state"`
	RaisedAt time.Time  `json:"raised_at"`
	// AlertedAt is when the alert was last sent; it is sent again until acknowledged.
	AlertedAt time.Time `json:"alerted_at,omitzero"`
	Alerts    int       `json:"alerts"`
}

// FaultID names the fault of code on device.
func FaultID(device string, code Code) string { return device + "/" + string(code) }

// NeedsAlert reports whether the fault's alert is due (again) at now: never sent, or sent
// more than every ago and not yet acknowledged.
func (f Fault) NeedsAlert(now time.Time, every time.Duration) bool {
	switch f.State {
	case Raised:
		return true
	case Alerted:
		return now.Sub(f.AlertedAt) >= every
	}
	return false
}

// OutOfService reports whether the fault keeps its device out of service.
func (f Fault) OutOfService() bool { return f.State != Cleared && !Advisory(f.Code) }

// Advisory reports whether faults of code are for maintenance to see but leave the device
// in service: nothing about them makes the camera unsafe to use or the rest of its
// footage unsafe to take.
func Advisory(c Code) bool { return c == EntryRefused }
