package camlink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// StoragePasswordLen is how many hex digits of the HMAC a camera takes as its password.
const StoragePasswordLen = 12

// StoragePassword is the password that unlocks the storage of the camera with this serial:
// the first 12 hex digits (lower case) of HMAC-SHA256(secret, serial), where secret is the
// fleet secret central provisions to docks and cameras. Each camera thus has its own
// password, and one camera's password (read off a stolen camera) opens no other. The dock
// computes it only from the serial the camera gave in its Identify answer.
func StoragePassword(secret []byte, serial string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(serial))
	return hex.EncodeToString(m.Sum(nil))[:StoragePasswordLen]
}
