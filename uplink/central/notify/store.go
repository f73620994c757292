package notify

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault is a fault as a dock alerted it, and when central first heard of it.
type Fault struct {
	Dock     string    `json:"dock"`
	ID       string    `json:"id"` // the dock's fault id: device/code
	Device   string    `json:"device"`
	Slot     int       `json:"slot"`
	Code     string    `json:"code"`
	Detail   string    `json:"detail"`
	RaisedAt time.Time `json:"raised_at"`
	Seen     time.Time `json:"seen_at"` // when central first heard of it
}

// Key tells one fault from another: the dock, its id, and when the dock raised it (raised
// again after being cleared, it is a new fault).
func (f Fault) Key() string {
	return f.Dock + "/" + f.ID + "@" + f.RaisedAt.UTC().Format(time.RFC3339Nano)
}

// Channel is how a delivery reaches a team.
type Channel string

const (
	ChannelWebhook Channel = "webhook"
	ChannelEmail   Channel = "email"
)

// DeliveryState is where a delivery is: open until taken or given up.
type DeliveryState string

const (
	Open    DeliveryState = "open"
	Sent    DeliveryState = "sent"     // the peer took it
	GivenUp DeliveryState = "given-up" // too old, or refused for good
)

// Delivery is one message, a digest of one dock's new faults, to one team by one channel.
type Delivery struct {
	ID        string        `json:"id"` // the same on every attempt: the peer's deduplication key
	Team      string        `json:"team"`
	Channel   Channel       `json:"channel"`
	Dock      string        `json:"dock"`
	Faults    []Fault       `json:"faults"`
	Created   time.Time     `json:"created"`
	State     DeliveryState `json:"state"`
	Attempts  int           `json:"attempts"`
	Next      time.Time     `json:"next"` // the next attempt, while open
	LastError string        `json:"last_error,omitempty"`
	Done      time.Time     `json:"done,omitzero"` // sent or given up
}

// Store keeps faults and deliveries across restarts; it must be safe for concurrent use.
// Every method that returns nil has made its change durable. The fleet's database
// implements it in production (fleet.DB.Notifications); MemStore is for unit tests and
// FileStore for a program
// without one. notifytest.StoreContract checks an implementation.
type Store interface {
	// AddFault records a fault heard of for the first time and reports true, or reports
	// false for one it holds (a repeated alert), pending, gathered or delivered.
	AddFault(f Fault) (bool, error)
	// Pending returns the faults not yet gathered into deliveries, oldest Seen first.
	Pending() ([]Fault, error)
	// Gather marks the faults of keys gathered and records ds, open, in one step.
	Gather(keys []string, ds []Delivery) error
	// Open returns the open deliveries, oldest Created first.
	Open() ([]Delivery, error)
	// Save records a delivery's new state after an attempt.
	Save(d Delivery) error
	// Prune forgets the gathered faults seen before before, and the deliveries done
	// before it.
	Prune(before time.Time) error
}

// MemStore is a Store in memory, for tests.
type MemStore struct {
	mu sync.Mutex
	st state
}

// state is what a store holds, as FileStore writes it.
type state struct {
	Faults     map[string]storedFault `json:"faults"`
	Deliveries map[string]Delivery    `json:"deliveries"`
}

type storedFault struct {
	Fault    Fault `json:"fault"`
	Gathered bool  `json:"gathered"`
}

func newState() state {
	return state{Faults: map[string]storedFault{}, Deliveries: map[string]Delivery{}}
}

func (s *state) addFault(f Fault) bool {
	if _, ok := s.Faults[f.Key()]; ok {
		return false
	}
	s.Faults[f.Key()] = storedFault{Fault: f}
	return true
}

func (s *state) pending() []Fault {
	var out []Fault
	for _, f := range s.Faults {
		if !f.Gathered {
			out = append(out, f.Fault)
		}
	}
	slices.SortFunc(out, func(a, b Fault) int {
		if c := a.Seen.Compare(b.Seen); c != 0 {
			return c
		}
		return strings.Compare(a.Key(), b.Key())
	})
	return out
}

func (s *state) gather(keys []string, ds []Delivery) error {
	for _, k := range keys {
		f, ok := s.Faults[k]
		if !ok {
			return fmt.Errorf("gather: no fault %q", k)
		}
		if f.Gathered {
			return fmt.Errorf("gather: fault %q gathered already", k)
		}
	}
	for _, d := range ds {
		if _, ok := s.Deliveries[d.ID]; ok {
			return fmt.Errorf("gather: delivery %q exists", d.ID)
		}
	}
	for _, k := range keys {
		f := s.Faults[k]
		f.Gathered = true
		s.Faults[k] = f
	}
	for _, d := range ds {
		d.State = Open
		s.Deliveries[d.ID] = d
	}
	return nil
}

func (s *state) open() []Delivery {
	var out []Delivery
	for _, d := range s.Deliveries {
		if d.State == Open {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Delivery) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (s *state) save(d Delivery) error {
	if _, ok := s.Deliveries[d.ID]; !ok {
		return fmt.Errorf("save: no delivery %q", d.ID)
	}
	s.Deliveries[d.ID] = d
	return nil
}

func (s *state) prune(before time.Time) {
	for k, f := range s.Faults {
		if f.Gathered && f.Fault.Seen.Before(before) {
			delete(s.Faults, k)
		}
	}
	for id, d := range s.Deliveries {
		if d.State != Open && d.Done.Before(before) {
			delete(s.Deliveries, id)
		}
	}
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{st: newState()} }

func (m *MemStore) AddFault(f Fault) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.addFault(f), nil
}

func (m *MemStore) Pending() ([]Fault, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.pending(), nil
}

func (m *MemStore) Gather(keys []string, ds []Delivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.gather(keys, ds)
}

func (m *MemStore) Open() ([]Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.open(), nil
}

func (m *MemStore) Save(d Delivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.save(d)
}

func (m *MemStore) Prune(before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.prune(before)
	return nil
}
