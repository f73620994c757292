package central

import (
	"container/list"
	"errors"
	"fmt"
	"time"

	"dock/uplink/wire"
)

// Limits bound what docks can make a receiver hold: in memory, in incoming/ on disk, and in
// one chunk. Every one has a default, taken when the field is zero, and says what central
// does past it. A dock is authenticated and confined to its own topics by the broker; these
// limits are for the dock that misbehaves anyway (a bug, a compromised board) and for the
// broker that lets anyone in (the demo's): no dock can exhaust central's memory or disk.
//
// In memory the receiver holds at most about
//
//	MaxDocks × (MaxLedgerBytes + MaxAlertsPerDock × 5 × MaxText + 2 × MaxText)
//	  + MaxDevices × MaxHealthSamples × ~300 bytes
//
// (with the defaults, about 2000 × (1 MiB + 1 MiB) + 20000 × 128 × 300 B ≈ 5 GB in the worst
// case, a few MB for a real fleet); on disk in incoming/, MaxIncomingBytesPerDock per dock.
// Recordings filed are evidence and are never limited or dropped.
type Limits struct {
	// MaxChunk is the longest chunk central stores: a longer one is answered with an ack
	// carrying an error and nothing of it is kept (the dock fails the transfer and retries
	// it). Default: ChunkSize, the chunk size this receiver grants; Grant refuses a grant
	// with a larger one. Office tools that publish grants of their own, and receivers
	// sharing the docks, must keep to it.
	MaxChunk int
	// MaxUploadsPerDock bounds a dock's uploads in progress in incoming/ (begun, not yet
	// filed). A begin of another recording past it is answered with an ack carrying an
	// error: the dock retries it later with backoff, while the uploads it has in progress
	// go on (a begin of one of them is never refused). Default 64; a dock uploads one
	// recording at a time, and leaves one in progress for each transfer that breaks off.
	MaxUploadsPerDock int
	// MaxIncomingBytesPerDock bounds the bytes a dock's uploads in progress may hold in
	// incoming/, counted by the size each announced at begin (what its part grows to). A
	// begin that would take the dock past it is refused like one past MaxUploadsPerDock; a
	// recording larger than it on its own is refused every time (the dock reports it
	// stuck). Default 64 GiB.
	MaxIncomingBytesPerDock int64
	// IncomingExpiry is how long an upload in progress may go without a begin or a chunk
	// stored before central removes it, part and state (the dock still holds its copy: it
	// uploads it again from the start). An upload already verified and being filed when
	// central stopped is filed instead, never removed. Default 7 days; negative: never.
	IncomingExpiry time.Duration
	// SweepEvery is how often the receiver looks for expired uploads. Default 1 hour.
	SweepEvery time.Duration
	// MaxDocks bounds the docks whose state the receiver keeps in memory (last status,
	// last config report, last grant, alerts, the ledger copy). Past it the state of the
	// dock heard from least recently is forgotten: its alerts are logged again when next
	// sent, its ledger copy starts again. Default 2000.
	MaxDocks int
	// MaxAlertsPerDock bounds the distinct alerts kept per dock; past it the one updated
	// least recently is forgotten. Default 100.
	MaxAlertsPerDock int
	// MaxLedgerBytes bounds the ledger entries kept in memory per dock, by their size: the
	// newest are kept, older ones are dropped from memory (the dock keeps its whole ledger;
	// a production central stores it). Default 1 MiB, some 2500 entries.
	MaxLedgerBytes int
	// MaxDevices bounds the devices whose health history is kept in memory; past it the
	// device reported on least recently is forgotten. Default 20000.
	MaxDevices int
	// MaxHealthSamples bounds the health samples kept per device: the newest. Default 128.
	MaxHealthSamples int
	// MaxText bounds each free-text field (an alert's detail, a config report's reason)
	// kept in memory or logged: longer is cut there. Default 2048 bytes.
	MaxText int
}

// Defaults of Limits.
const (
	DefaultMaxUploadsPerDock       = 64
	DefaultMaxIncomingBytesPerDock = 64 << 30
	DefaultIncomingExpiry          = 7 * 24 * time.Hour
	DefaultSweepEvery              = time.Hour
	DefaultMaxDocks                = 2000
	DefaultMaxAlertsPerDock        = 100
	DefaultMaxLedgerBytes          = 1 << 20
	DefaultMaxDevices              = 20000
	DefaultMaxHealthSamples        = 128
	DefaultMaxText                 = 2048
)

// withDefaults fills every zero limit with its default; chunk is the chunk size granted.
func (l Limits) withDefaults(chunk int) Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxChunk, chunk)
	def(&l.MaxUploadsPerDock, DefaultMaxUploadsPerDock)
	def(&l.MaxDocks, DefaultMaxDocks)
	def(&l.MaxAlertsPerDock, DefaultMaxAlertsPerDock)
	def(&l.MaxLedgerBytes, DefaultMaxLedgerBytes)
	def(&l.MaxDevices, DefaultMaxDevices)
	def(&l.MaxHealthSamples, DefaultMaxHealthSamples)
	def(&l.MaxText, DefaultMaxText)
	if l.MaxIncomingBytesPerDock == 0 {
		l.MaxIncomingBytesPerDock = DefaultMaxIncomingBytesPerDock
	}
	if l.IncomingExpiry == 0 {
		l.IncomingExpiry = DefaultIncomingExpiry
	}
	if l.SweepEvery <= 0 {
		l.SweepEvery = DefaultSweepEvery
	}
	return l
}

// ErrLimit is a begin or a chunk refused by one of central's Limits.
var ErrLimit = errors.New("central limit")

// checkChunk refuses a chunk longer than the limit.
func (l Limits) checkChunk(c wire.Chunk) error {
	if len(c.Data) > l.MaxChunk {
		return fmt.Errorf("%w: chunk of %d bytes at %d is longer than the granted chunk size %d: refused, nothing kept", ErrLimit, len(c.Data), c.Offset, l.MaxChunk)
	}
	return nil
}

// admit checks a begin against dock's uploads in progress: one of them is always admitted
// as announced before; another, or one announced with another size, only within
// MaxUploadsPerDock and MaxIncomingBytesPerDock. Instances sharing a store each check on
// their own: begins of one dock that reach two of them at the same instant may both pass.
func (l Limits) admit(st Storage, dock string, b wire.BeginMsg) error {
	in, err := st.Incoming(dock)
	if err != nil {
		return err
	}
	n, held := 0, int64(0)
	for _, u := range in {
		if u.ID == b.Recording.ID {
			if u.Size == b.Size {
				return nil // in progress as announced: resumed, whatever the others hold
			}
			continue // announced again otherwise: starts over, in place of this one
		}
		n++
		held += u.Size
	}
	switch {
	case b.Size > l.MaxIncomingBytesPerDock:
		return fmt.Errorf("%w: a recording of %d bytes is larger than the %d bytes central holds in progress for one dock", ErrLimit, b.Size, l.MaxIncomingBytesPerDock)
	case n >= l.MaxUploadsPerDock:
		return fmt.Errorf("%w: %d uploads in progress from this dock, at most %d: try again later", ErrLimit, n, l.MaxUploadsPerDock)
	case b.Size > l.MaxIncomingBytesPerDock-held:
		return fmt.Errorf("%w: %d bytes in progress from this dock and %d more announced, at most %d: try again later", ErrLimit, held, b.Size, l.MaxIncomingBytesPerDock)
	}
	return nil
}

// clip cuts free text from a dock to at most n bytes (on a UTF-8 boundary).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-4 && s[i]&0xc0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}

// lru is a map of at most max entries that forgets the one used least recently past it.
type lru[K comparable, V any] struct {
	max int
	m   map[K]*list.Element
	l   list.List // of *lruEntry[K, V], the most recently used first
}

type lruEntry[K comparable, V any] struct {
	k K
	v V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	c := &lru[K, V]{max: max, m: map[K]*list.Element{}}
	c.l.Init()
	return c
}

// get returns k's value and makes it the most recently used.
func (c *lru[K, V]) get(k K) (V, bool) {
	if e, ok := c.m[k]; ok {
		c.l.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).v, true
	}
	var zero V
	return zero, false
}

// peek returns k's value as it is.
func (c *lru[K, V]) peek(k K) (V, bool) {
	if e, ok := c.m[k]; ok {
		return e.Value.(*lruEntry[K, V]).v, true
	}
	var zero V
	return zero, false
}

// put sets k's value, the most recently used, and returns the key it forgot to make room.
func (c *lru[K, V]) put(k K, v V) (forgot K, ok bool) {
	if e, found := c.m[k]; found {
		e.Value.(*lruEntry[K, V]).v = v
		c.l.MoveToFront(e)
		return forgot, false
	}
	c.m[k] = c.l.PushFront(&lruEntry[K, V]{k: k, v: v})
	if c.l.Len() > c.max {
		last := c.l.Back()
		old := last.Value.(*lruEntry[K, V]).k
		c.l.Remove(last)
		delete(c.m, old)
		return old, true
	}
	return forgot, false
}

func (c *lru[K, V]) delete(k K) {
	if e, ok := c.m[k]; ok {
		c.l.Remove(e)
		delete(c.m, k)
	}
}

func (c *lru[K, V]) len() int { return c.l.Len() }

// each calls f on every entry, the most recently used first.
func (c *lru[K, V]) each(f func(K, V)) {
	for e := c.l.Front(); e != nil; e = e.Next() {
		x := e.Value.(*lruEntry[K, V])
		f(x.k, x.v)
	}
}
