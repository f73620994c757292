package camlink

import "testing"

func TestStoragePassword(t *testing.T) {
	secret := []byte("fleet secret")
	for _, tc := range []struct {
		name   string
		secret []byte
		serial string
		want   string
	}{
		// echo -n CAM-0001 | openssl dgst -sha256 -hmac "fleet secret" | cut -c1-12
		{"known answer", secret, "CAM-0001", "0d23619c0b33"},
		{"other camera", secret, "CAM-0002", "68a65043fcb9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StoragePassword(tc.secret, tc.serial); got != tc.want {
				t.Errorf("StoragePassword(%q, %q) = %q, want %q", tc.secret, tc.serial, got, tc.want)
			}
		})
	}
	if StoragePassword(secret, "CAM-0001") == StoragePassword([]byte("other fleet"), "CAM-0001") {
		t.Error("two fleet secrets give one camera the same password")
	}
}
