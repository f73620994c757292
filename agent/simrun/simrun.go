// Package simrun owns running the real agent on the simulated dock, with a broker and the
// central receiver, for docksim, the demo and the integration tests. Never in the dock binary.
package simrun

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"dock/agent"
	"dock/agent/version"
	"dock/board/sim"
	"dock/queue"
	"dock/uplink"
	"dock/uplink/broker"
	"dock/uplink/central"
	"dock/uplink/wire"
)

// Options configure a simulated dock run.
type Options struct {
	Dir    string // state: dock/, central/, sim/, cameras/
	Slots  int
	Dock   string
	Broker string // MQTT URL; empty starts the embedded broker on loopback
	// NoCentral leaves the central receiver out (it runs elsewhere: it must then sign
	// with CentralKey, or the dock refuses everything it sends).
	NoCentral bool
	// CentralKey is central's signing key, whose public half the agent trusts (nil: a new
	// one for this run, in Harness.CentralKey).
	CentralKey ed25519.PrivateKey
	Log        *slog.Logger
	// Config adjusts the agent's configuration before start.
	Config func(*agent.Config)
	// SpoolRate caps the spool's write rate in bytes per second, a slow disk such as an SD
	// card (0: the disk's own).
	SpoolRate int64
	// Clock is the agent's clock (nil: the system's).
	Clock func() time.Time
}

// Harness is a running agent on a simulated dock.
type Harness struct {
	Dir       string
	BrokerURL string
	Broker    *broker.Broker
	Dock      *sim.Dock
	Store     *queue.Store
	Uplink    *uplink.Uplink
	Agent     *agent.Agent
	Central   *central.Receiver
	Log       *slog.Logger
	// CentralKey signs everything central sends the dock; the agent trusts its public half.
	CentralKey ed25519.PrivateKey

	cancel context.CancelFunc
	done   chan error
}

// Start brings everything up and starts the agent.
func Start(ctx context.Context, o Options) (h *Harness, err error) {
	if o.Slots == 0 {
		o.Slots = 4
	}
	if o.Dock == "" {
		o.Dock = "dock-sim-1"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h = &Harness{Dir: o.Dir, BrokerURL: o.Broker, Log: o.Log}
	var pub ed25519.PublicKey
	if o.CentralKey != nil {
		h.CentralKey = o.CentralKey
		pub = o.CentralKey.Public().(ed25519.PublicKey)
	} else if pub, h.CentralKey, err = ed25519.GenerateKey(nil); err != nil {
		return h, err
	}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if h.BrokerURL == "" {
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		h.Broker, err = broker.Start("127.0.0.1:0", quiet)
		if err != nil {
			return h, err
		}
		h.BrokerURL = h.Broker.URL()
	}
	if !o.NoCentral {
		h.Central, err = central.Start(ctx, central.Options{Broker: h.BrokerURL, ClientID: "central-" + o.Dock, Store: central.FileStore{Dir: filepath.Join(o.Dir, "central")}, SigningKey: h.CentralKey}, o.Log.With("component", "central"))
		if err != nil {
			return h, err
		}
	}
	h.Dock, err = sim.New(filepath.Join(o.Dir, "sim"), o.Slots, o.Log.With("component", "sim"))
	if err != nil {
		return h, err
	}
	cfg := agent.DefaultConfig()
	cfg.Dock, cfg.Board, cfg.DataDir, cfg.Broker = o.Dock, "sim", filepath.Join(o.Dir, "dock"), h.BrokerURL
	cfg.Poll = wire.Duration(time.Second)
	cfg.SpoolReserve = 64 << 20
	cfg.LinkTimeout = wire.Duration(300 * time.Millisecond)
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.CopyStall = wire.Duration(time.Second)
	cfg.SpoolKeyFile = filepath.Join(o.Dir, "keys", "spool.key")
	cfg.CentralKey = base64.StdEncoding.EncodeToString(pub)
	cfg.ClockSync = agent.ClockSyncNone // the host's clock: nothing on a test machine says it is synchronised
	if o.Config != nil {
		o.Config(&cfg)
	}
	if err := cfg.Check(); err != nil {
		return h, err
	}
	h.Store, err = agent.OpenStore(cfg, o.Log)
	if err != nil {
		return h, err
	}
	h.Store.Spool().Throttle(o.SpoolRate)
	h.Uplink, err = uplink.Dial(ctx, uplink.Options{Broker: h.BrokerURL, Dock: cfg.Dock, Version: version.Version, CentralKey: cfg.CentralPublicKey()}, o.Log.With("component", "uplink"))
	if err != nil {
		return h, err
	}
	h.Agent, err = agent.New(cfg, h.Dock.Board(), h.Store, h.Uplink, o.Log)
	if err != nil {
		return h, err
	}
	if o.Clock != nil {
		h.Agent.UseClock(o.Clock)
	}
	actx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.Agent.Run(actx) }()
	return h, nil
}

// Close stops the agent and everything the harness started.
func (h *Harness) Close() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
	if h.Uplink != nil {
		h.Uplink.Close()
	}
	if h.Store != nil {
		h.Store.Close()
	}
	if h.Dock != nil {
		h.Dock.Close()
	}
	if h.Central != nil {
		h.Central.Close()
	}
	if h.Broker != nil {
		h.Broker.Close()
	}
}

// Footage describes a generated camera's recordings: recording id -> SHA-256.
type Footage map[string]string

// NewCamera makes a camera with n generated recordings of size bytes under the harness's
// cameras/ directory; mod adjusts its state. It returns the recordings' hashes, computed
// from the camera's files before anything touches them.
func (h *Harness) NewCamera(serial, officer string, n int, size int64, seed uint64, marks map[int]string, mod func(*sim.CameraState)) (*sim.Camera, Footage, error) {
	st := sim.DefaultCamera(serial, officer, "unit-1")
	if mod != nil {
		mod(&st)
	}
	cam, err := sim.NewCamera(filepath.Join(h.Dir, "cameras", serial), st)
	if err != nil {
		return nil, nil, err
	}
	if err := cam.Generate(n, size, seed, time.Now().Add(-time.Hour), marks); err != nil {
		return nil, nil, err
	}
	fp, err := HashFootage(cam)
	return cam, fp, err
}

// HashFootage hashes every recording on a camera, keyed by recording id.
func HashFootage(cam *sim.Camera) (Footage, error) {
	fp := Footage{}
	for _, f := range cam.Files() {
		sum, err := HashFile(filepath.Join(cam.Footage(), f.Name))
		if err != nil {
			return nil, err
		}
		fp[queue.RecordingID(cam.Serial(), f.Name, f.Start, f.Size)] = sum
	}
	return fp, nil
}

// HashFile returns a file's SHA-256 in hex.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hh := sha256.New()
	if _, err := io.Copy(hh, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(hh.Sum(nil)), nil
}

// CheckCentral compares want against what central stored, re-hashing each stored file
// from disk. It returns the ids missing and the ids whose bytes differ.
func CheckCentral(store central.Storage, want Footage) (missing, corrupt []string, err error) {
	for id, sum := range want {
		s, ok, err := store.Lookup(id)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			missing = append(missing, id)
			continue
		}
		got, err := HashFile(s.Path)
		if err != nil || got != sum || s.SHA256 != sum {
			corrupt = append(corrupt, id)
		}
	}
	return missing, corrupt, nil
}

// WaitCentral waits until central holds every recording of want with a matching hash.
func WaitCentral(ctx context.Context, store central.Storage, want Footage) error {
	for {
		missing, corrupt, err := CheckCentral(store, want)
		if err != nil {
			return err
		}
		if len(corrupt) > 0 {
			return fmt.Errorf("corrupt at central: %v", corrupt)
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d recordings not at central: %w", len(missing), len(want), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitFor polls cond every 50 ms until it holds or ctx ends.
func WaitFor(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("timed out waiting for " + what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
