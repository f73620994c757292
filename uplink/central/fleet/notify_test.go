package fleet

import (
	"testing"

	"dock/uplink/central/notify"
	"dock/uplink/central/notify/notifytest"
)

// The fleet database keeps the notifications as every notify.Store must, across reopening.
func TestNotifyStore(t *testing.T) {
	notifytest.StoreContract(t, func(t *testing.T) (notify.Store, func() notify.Store) {
		dir := t.TempDir()
		db, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Notifications(), func() notify.Store {
			db.Close()
			if db, err = Open(dir); err != nil {
				t.Fatal(err)
			}
			return db.Notifications()
		}
	})
}
