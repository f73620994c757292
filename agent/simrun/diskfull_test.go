package simrun

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"dock/agent"
	"dock/queue"
	"dock/uplink/central"
)

// A spool on a small filesystem: offload stops at the reserve, the footage stays on the
// camera, a spool-full fault is raised, Badger never meets a full disk, and offload resumes
// by itself once central's receipts let the dock free space.
func TestDiskFullPausesOffloadAndResumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a size-limited tmpfs needs root")
	}
	base := t.TempDir()
	spoolFS := filepath.Join(base, "small")
	if err := os.MkdirAll(spoolFS, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", spoolFS).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("skipping: cannot mount tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", spoolFS).Run() })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h, err := Start(ctx, Options{Dir: base, Slots: 1, NoCentral: true, Log: testLog(t), Config: func(c *agent.Config) {
		c.DataDir = filepath.Join(spoolFS, "dock")
		c.SpoolReserve = 40 << 20
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// 20 x 4 MiB = 80 MiB of footage; at most 56 MiB fits above the 40 MiB reserve.
	cam, want, err := h.NewCamera("CAM-FULL", "OF-1", 20, 4<<20, 7, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Dock.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "spool-full fault", func() bool {
		for _, f := range h.Agent.Faults() {
			if f.Code == "spool-full" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a few more polls: offload must stay paused
	left := len(cam.State().Files)
	st, _ := h.Store.Stats()
	if left == 0 || st.Count[queue.Spooled] == 0 {
		t.Fatalf("expected a partial offload: %d left on camera, %d spooled", left, st.Count[queue.Spooled])
	}
	if left+st.Count[queue.Spooled] != len(want) {
		t.Fatalf("%d on camera + %d spooled != %d recorded", left, st.Count[queue.Spooled], len(want))
	}
	free, _ := h.Store.Spool().FreeBytes()
	if free < 32<<20 {
		t.Fatalf("only %d bytes free: the reserve was eaten into", free)
	}
	if st.Count[queue.Freed] != 0 {
		t.Fatal("something was freed without central's receipt")
	}

	// Central comes up: receipts free the spool, offload resumes, everything arrives.
	rcv, err := central.Start(ctx, central.Options{Broker: h.BrokerURL, ClientID: "central-late", Store: central.FileStore{Dir: filepath.Join(base, "central")}, SigningKey: h.CentralKey}, h.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	if err := WaitCentral(ctx, rcv.Store(), want); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, "camera empty", func() bool { return len(cam.State().Files) == 0 }); err != nil {
		t.Fatal(err)
	}
	for _, f := range h.Agent.Faults() {
		if f.Code == "spool-full" && f.State != "cleared" {
			t.Errorf("spool-full still %s after space returned", f.State)
		}
	}
}
