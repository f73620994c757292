package agent

import (
	"context"
	"dock/queue"
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotify sends a state line to systemd's notify socket; it does nothing when the agent
// is not run by systemd.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}

// watchdog tells systemd the agent is ready, then pets its watchdog at half the
// configured interval for as long as the store answers; a hung agent is restarted.
func (a *Agent) watchdog(ctx context.Context) {
	sdNotify("READY=1")
	defer sdNotify("STOPPING=1")
	usec, _ := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if usec <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(time.Duration(usec) * time.Microsecond / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.store.Get("\x00watchdog-probe"); err == nil || isNotFound(err) {
				sdNotify("WATCHDOG=1")
			}
		}
	}
}

func isNotFound(err error) bool { return errors.Is(err, queue.ErrNotFound) }
