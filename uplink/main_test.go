package uplink

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the package's tests start ends with its test: goleak fails the run
// when one outlives them (issue #16).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
