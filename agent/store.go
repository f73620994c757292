package agent

import (
	"log/slog"

	"dock/queue"
)

// OpenStore opens the dock's queue under cfg.DataDir with its spool encrypted for the
// dock's key (created at cfg.SpoolKeyFile on first start).
func OpenStore(cfg Config, log *slog.Logger) (*queue.Store, error) {
	key, err := queue.LoadKey(cfg.SpoolKeyFile)
	if err != nil {
		return nil, err
	}
	s, err := queue.Open(cfg.DataDir, log.With("component", "queue"))
	if err != nil {
		return nil, err
	}
	s.Encrypt(key)
	return s, nil
}
