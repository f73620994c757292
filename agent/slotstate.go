package agent

import "fmt"

// SlotState is where one bay is in a docking.
type SlotState string

const (
	Empty        SlotState = "empty"
	Docked       SlotState = "docked"     // presence seen, charger on
	Identified   SlotState = "identified" // the camera said who it is
	Offloading   SlotState = "offloading" // footage moving into the spool
	Charging     SlotState = "charging"   // offloaded; charging until taken
	OutOfService SlotState = "out-of-service"
	Removed      SlotState = "removed" // the camera left; the slot is being reset
)

// SlotEvent is something that happens in a bay.
type SlotEvent string

const (
	EvPresent    SlotEvent = "present"
	EvIdentified SlotEvent = "identified"
	EvOffload    SlotEvent = "offload"
	EvOffloaded  SlotEvent = "offloaded"
	EvFaulted    SlotEvent = "faulted"
	EvAbsent     SlotEvent = "absent"
	EvReset      SlotEvent = "reset"
	EvResume     SlotEvent = "resume" // the agent restarted mid-docking
)

// nextSlot is the one transition function of a bay. Illegal moves are errors.
func nextSlot(s SlotState, e SlotEvent) (SlotState, error) {
	switch e {
	case EvPresent:
		if s == Empty || s == Removed {
			return Docked, nil
		}
	case EvIdentified:
		if s == Docked {
			return Identified, nil
		}
	case EvOffload:
		if s == Identified || s == Charging || s == OutOfService {
			return Offloading, nil
		}
	case EvOffloaded:
		if s == Offloading {
			return Charging, nil
		}
	case EvFaulted:
		if s == Docked || s == Identified || s == Offloading || s == Charging || s == OutOfService {
			return OutOfService, nil
		}
	case EvAbsent:
		if s != Empty {
			return Removed, nil
		}
	case EvResume:
		if s != Empty && s != Removed {
			return Docked, nil
		}
	case EvReset:
		if s == Removed {
			return Empty, nil
		}
	}
	return s, fmt.Errorf("slot: %s not allowed while %s", e, s)
}
