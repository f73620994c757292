package fleet

import (
	"fmt"
	"testing"
	"time"

	"dock/uplink/wire"
)

// What one telemetry message costs central (one transaction, fsynced): the fleet's
// capacity in docks is about the rate times the docks' telemetry period.
func BenchmarkDockTelemetry(b *testing.B) {
	db, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	m := wire.TelemetryMsg{Time: time.Now(), Config: 3, Queue: wire.QueueTelemetry{Pending: 4, PendingBytes: 1 << 30, SpoolFree: 1 << 34}}
	for i := range 4 {
		m.Slots = append(m.Slots, wire.SlotTelemetry{Slot: i, State: "charging", Device: fmt.Sprintf("CAM-%d", i), Officer: "OF-1",
			Battery: &wire.Battery{ChargePct: 80, HealthPct: 90, Cycles: 100}, Storage: &wire.Storage{Capacity: 64 << 30, Free: 60 << 30}})
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := db.DockTelemetry(fmt.Sprintf("dock-%d", i%500), m); err != nil {
			b.Fatal(err)
		}
	}
}
