package notify_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"dock/uplink/central/notify"
	"dock/uplink/central/notify/notifytest"
)

func TestMemStore(t *testing.T) {
	notifytest.StoreContract(t, func(t *testing.T) (notify.Store, func() notify.Store) {
		s := notify.NewMemStore()
		return s, func() notify.Store { return s }
	})
}

func TestFileStore(t *testing.T) {
	notifytest.StoreContract(t, func(t *testing.T) (notify.Store, func() notify.Store) {
		path := filepath.Join(t.TempDir(), "notify.json")
		s, err := notify.OpenFileStore(path)
		if err != nil {
			t.Fatal(err)
		}
		return s, func() notify.Store {
			s, err := notify.OpenFileStore(path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// A change the file store cannot make durable is refused and undone: the fault stays new,
// so the dock's next repeat records it.
func TestFileStoreUndoesWhatItCannotWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := notify.OpenFileStore(filepath.Join(dir, "notify.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := notify.Fault{Dock: "dock-1", ID: "CAM-1/battery-worn", RaisedAt: time.Now(), Seen: time.Now()}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if added, err := s.AddFault(f); err == nil || added {
		t.Fatalf("added %v, err %v with its directory gone", added, err)
	}
	if p, _ := s.Pending(); len(p) != 0 {
		t.Fatalf("pending %v: a fault not written is held", p)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if added, err := s.AddFault(f); err != nil || !added {
		t.Fatalf("the repeat: added %v, err %v", added, err)
	}
	s, err = notify.OpenFileStore(filepath.Join(dir, "notify.json"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(); len(p) != 1 {
		t.Fatalf("after reopening: pending %v", p)
	}
}
