package simrun

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// records keeps every log record's attributes, the logger's own included. The handlers
// made by WithAttrs share the lock with their parent: they append to the same list.
type records struct {
	mu    *sync.Mutex
	attrs []slog.Attr // the handler's own (from With)
	seen  *[][]slog.Attr
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }

func (r *records) Handle(_ context.Context, rec slog.Record) error {
	all := append([]slog.Attr(nil), r.attrs...)
	rec.Attrs(func(a slog.Attr) bool { all = append(all, a); return true })
	r.mu.Lock()
	*r.seen = append(*r.seen, all)
	r.mu.Unlock()
	return nil
}

func (r *records) WithAttrs(as []slog.Attr) slog.Handler {
	return &records{mu: r.mu, attrs: append(append([]slog.Attr(nil), r.attrs...), as...), seen: r.seen}
}

func (r *records) WithGroup(string) slog.Handler { return r }

// A bay's log lines name the camera docked now, once: not every camera docked since start.
func TestSlotLogNamesOnlyTheDockedCamera(t *testing.T) {
	var seen [][]slog.Attr
	h := &records{mu: new(sync.Mutex), seen: &seen}
	ctx, hs := startHarness(t, 60*time.Second, Options{Dir: t.TempDir(), Slots: 1, Log: slog.New(h)})
	for i, serial := range []string{"CAM-L1", "CAM-L2", "CAM-L3"} {
		cam, _, err := hs.NewCamera(serial, "OF", 1, 10_000, uint64(i), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = hs.Dock.Dock(0, cam)
		waitCameraEmpty(ctx, t, cam)
		_, _ = hs.Dock.Undock(0)
		time.Sleep(300 * time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	checked := 0
	for _, attrs := range seen {
		devices := map[string]bool{}
		for _, a := range attrs {
			if a.Key == "device" && a.Value.String() != "" {
				devices[a.Value.String()] = true
			}
		}
		if len(devices) > 1 {
			t.Fatalf("a log line names %d cameras: %v", len(devices), attrs)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no log lines seen")
	}
}
