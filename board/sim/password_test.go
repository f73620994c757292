package sim

import (
	"context"
	"errors"
	"testing"

	"dock/hw/camlink"
)

// unlock identifies the camera and then sends password, as the dock does.
func unlock(l *camlink.Link, password string) error {
	ctx := context.Background()
	if _, err := l.Identify(ctx); err != nil {
		return err
	}
	return l.Auth(ctx, password)
}

// A provisioned camera opens its storage only to its own derived password, and only to a
// dock that asked who it is first.
func TestProvisionedCameraPassword(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	st := DefaultCamera("CAM-P1", "OF-1", "U-1")
	st.Provision(secret)
	for _, tc := range []struct {
		name     string
		identify bool
		password string
		ok       bool
	}{
		{"derived password after identify", true, camlink.StoragePassword(secret, "CAM-P1"), true},
		{"fleet default", true, "000000", false},
		{"another camera's password", true, camlink.StoragePassword(secret, "CAM-P2"), false},
		{"another fleet's password", true, camlink.StoragePassword([]byte("other fleet secret!"), "CAM-P1"), false},
		{"derived password before identify", false, camlink.StoragePassword(secret, "CAM-P1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDock(t, 1)
			cam, err := NewCamera(t.TempDir(), st)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Dock(0, cam); err != nil {
				t.Fatal(err)
			}
			l := link(t, d, 0)
			if tc.identify {
				err = unlock(l, tc.password)
			} else {
				err = l.Auth(context.Background(), tc.password)
			}
			var re *camlink.RemoteError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && !errors.As(err, &re):
				t.Fatalf("not refused by the camera: %v", err)
			}
		})
	}
}
