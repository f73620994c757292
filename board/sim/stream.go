package sim

import (
	"io"
	"time"

	"dock/hw/camlink"
)

// ServeStream answers the camera link protocol as c over rw (a socket, a pipe, an emulated
// UART's host end) until reading rw fails, and returns that error (nil at io.EOF). mount
// is where Auth exposes the camera's storage; charging, if not nil, says whether the bay's
// charger is on. It is the serving loop of a docked slot without the pseudo-terminal.
func (c *Camera) ServeStream(rw io.ReadWriter, mount string, charging func() bool) error {
	ses := &session{mount: mount}
	var dec camlink.Decoder
	buf := make([]byte, 4096)
	for {
		n, err := rw.Read(buf)
		dec.Write(buf[:n])
		for {
			f, ok := dec.Next()
			if !ok {
				break
			}
			reply, ok := c.handle(f, ses, time.Now(), charging != nil && charging())
			if !ok {
				continue
			}
			if _, err := rw.Write(reply); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
