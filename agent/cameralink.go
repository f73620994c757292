package agent

import (
	"context"
	"time"

	"dock/hw/camlink"
)

// cameraLink is the camera's serial link as a docking uses it: the consumer's side of
// hw/camlink, so that a docking can run over a fake camera in a test. *camlink.Link is the
// real one.
type cameraLink interface {
	Identify(ctx context.Context) (camlink.Identity, error)
	SetClock(ctx context.Context, now time.Time) (time.Duration, error)
	Battery(ctx context.Context) (camlink.Battery, error)
	Storage(ctx context.Context) (camlink.Storage, error)
	Auth(ctx context.Context, password string) error
	List(ctx context.Context, lim camlink.ListLimits) (camlink.Listing, error)
	Delete(ctx context.Context, name string, size int64) error
	Lock(ctx context.Context, reason string) error
	// Garbage is what the link received that was no frame, and how many bytes of it.
	Garbage() ([]byte, int)
	Close() error
}

var _ cameraLink = (*camlink.Link)(nil)
