package camlink

import (
	"fmt"
	"io"
	"time"

	"github.com/tarm/serial"
)

// OpenSerial opens a camera's serial port (a /dev/ttyS*, /dev/ttyUSB* or pseudo-terminal
// path) raw, with a short read timeout so that Close never waits on a blocked read.
func OpenSerial(path string, baud int) (io.ReadWriteCloser, error) {
	if baud == 0 {
		baud = 115200
	}
	p, err := serial.OpenPort(&serial.Config{Name: path, Baud: baud, ReadTimeout: 50 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("open serial %s: %w", path, err)
	}
	return p, nil
}
