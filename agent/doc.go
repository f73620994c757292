// Package agent owns the dock daemon: the per-slot state machines, config, faults and alerts,
// and the wiring of hardware, queue and uplink. Nothing imports it but its programs.
package agent
