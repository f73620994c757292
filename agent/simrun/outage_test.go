package simrun

import (
	"os"
	"runtime"
	"testing"
	"time"

	"dock/board/sim"
	"dock/queue"
	"dock/uplink/mqtttest"
)

// The broker goes away for a long outage, then flaps: down 1.5 s, up 3 s, again and again,
// while cameras offload and upload. Everything arrives at central, an alert raised while
// offline is delivered after the reconnect, and the process's goroutines and heap end
// where they started. DOCK_LONG=1 makes the outage three minutes and the flaps 40.
func TestBrokerOutageAndFlapping(t *testing.T) {
	outage, flaps := 20*time.Second, 6
	if os.Getenv("DOCK_LONG") != "" {
		outage, flaps = 3*time.Minute, 40
	}
	mq := mqtttest.Start(t, "")
	ctx, h := startHarness(t, outage+time.Duration(flaps)*5*time.Second+3*time.Minute, Options{Dir: t.TempDir(), Slots: 3, Broker: mq.URL, Log: testLog(t)})
	a, fa, err := h.NewCamera("CAM-O1", "OF-1", 4, 4<<20, 21, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(0, a)
	if err := WaitCentral(ctx, h.Central.Store(), fa); err != nil {
		t.Fatal(err)
	}
	goroutines0, heap0 := settled()

	// A long outage: a camera with a worn battery is offloaded while central is unreachable.
	mq.Stop()
	down := time.Now()
	b, fb, err := h.NewCamera("CAM-O2", "OF-2", 4, 4<<20, 22, nil, func(s *sim.CameraState) { s.FullMAh = 1200 })
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(1, b)
	if err := WaitFor(ctx, "offloaded and faulted offline", func() bool {
		st, _ := h.Store.Stats()
		return st.Count[queue.Spooled] == len(fb) && faultOf(h, "battery-worn").ID != ""
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Central.Alerts()["dock-sim-1/CAM-O2/battery-worn"]; ok {
		t.Fatal("central has the alert while the broker is down")
	}
	time.Sleep(time.Until(down.Add(outage)))
	mq.Up()
	back := time.Now()
	if err := WaitFor(ctx, "the alert raised offline at central", func() bool {
		_, ok := h.Central.Alerts()["dock-sim-1/CAM-O2/battery-worn"]
		return ok
	}); err != nil {
		t.Fatal(err)
	}
	if err := WaitCentral(ctx, h.Central.Store(), fb); err != nil {
		t.Fatal(err)
	}
	t.Logf("outage of %s: alert and %d recordings at central %s after the broker came back", outage, len(fb), time.Since(back).Round(time.Millisecond))

	// A flapping connection while a camera of larger recordings uploads.
	c, fc, err := h.NewCamera("CAM-O3", "OF-3", 6, 8<<20, 23, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Dock.Dock(2, c)
	for i := 0; i < flaps; i++ {
		mq.Stop()
		time.Sleep(1500 * time.Millisecond)
		mq.Up()
		time.Sleep(3 * time.Second)
	}
	if err := WaitCentral(ctx, h.Central.Store(), fc); err != nil {
		st, _ := h.Store.Stats()
		t.Fatalf("%v after %d flaps (dock queue %+v)", err, flaps, st)
	}
	if n, err := h.Store.VerifyLedger(); err != nil {
		t.Fatalf("ledger after %d entries: %v", n, err)
	}
	goroutines1, heap1 := settled()
	t.Logf("goroutines %d -> %d, heap in use %.1f -> %.1f MiB across the outage and %d flaps", goroutines0, goroutines1, mib(heap0), mib(heap1), flaps)
	// Two more docked cameras account for a few goroutines; a leak per reconnect would
	// show as dozens.
	if goroutines1 > goroutines0+16 {
		t.Errorf("goroutines grew from %d to %d across %d reconnects", goroutines0, goroutines1, flaps+1)
	}
	if heap1 > heap0+32<<20 {
		t.Errorf("heap in use grew from %.1f to %.1f MiB across %d reconnects", mib(heap0), mib(heap1), flaps+1)
	}
}

// settled returns the goroutine count and heap in use after a garbage collection.
func settled() (int, uint64) {
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
