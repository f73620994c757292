package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileStore is a Store in one JSON file, rewritten whole on every change (under a
// temporary name, fsynced, renamed over the old one, the directory fsynced): for a central
// without the fleet's database. It suits what a Store holds, a few thousand faults and
// deliveries; a change it could not make durable is undone and returned as an error.
type FileStore struct {
	mu   sync.Mutex
	path string
	st   state
}

// OpenFileStore opens the store at path, empty if the file does not exist yet.
func OpenFileStore(path string) (*FileStore, error) {
	fs := &FileStore{path: path, st: newState()}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("notify store: %w", err)
	}
	if err := json.Unmarshal(b, &fs.st); err != nil {
		return nil, fmt.Errorf("notify store %s: %w", path, err)
	}
	if fs.st.Faults == nil {
		fs.st.Faults = map[string]storedFault{}
	}
	if fs.st.Deliveries == nil {
		fs.st.Deliveries = map[string]Delivery{}
	}
	return fs, nil
}

// change applies fn to the state and writes it; if either fails the state is as before.
func (fs *FileStore) change(fn func(*state) error) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	before, err := json.Marshal(fs.st)
	if err != nil {
		return err
	}
	undo := func() {
		st := newState()
		if json.Unmarshal(before, &st) == nil {
			fs.st = st
		}
	}
	if err := fn(&fs.st); err != nil {
		undo()
		return err
	}
	if err := fs.write(); err != nil {
		undo()
		return fmt.Errorf("notify store %s: %w", fs.path, err)
	}
	return nil
}

func (fs *FileStore) write() error {
	b, err := json.Marshal(fs.st)
	if err != nil {
		return err
	}
	dir := filepath.Dir(fs.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(fs.path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; left by a failure
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), fs.path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (fs *FileStore) AddFault(f Fault) (bool, error) {
	fs.mu.Lock()
	_, known := fs.st.Faults[f.Key()]
	fs.mu.Unlock()
	if known {
		return false, nil // a repeat: nothing to write
	}
	added := false
	err := fs.change(func(s *state) error { added = s.addFault(f); return nil })
	return added && err == nil, err
}

func (fs *FileStore) Pending() ([]Fault, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.st.pending(), nil
}

func (fs *FileStore) Gather(keys []string, ds []Delivery) error {
	return fs.change(func(s *state) error { return s.gather(keys, ds) })
}

func (fs *FileStore) Open() ([]Delivery, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.st.open(), nil
}

func (fs *FileStore) Save(d Delivery) error {
	return fs.change(func(s *state) error { return s.save(d) })
}

func (fs *FileStore) Prune(before time.Time) error {
	return fs.change(func(s *state) error { s.prune(before); return nil })
}
