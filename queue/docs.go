package queue

import (
	"encoding/json"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// The agent's documents: small JSON values of its own (a bay's state, a fault, the config
// central pushed, a device's history, the ledger's anchor, the last command seen) kept
// under d/<kind>/<id> in the same Badger database as the recordings, so a document and the
// ledger entry that records its change are written in one synced transaction. The queue
// does not read them; it only stores them.

// PutDoc stores one of the agent's documents (a slot's state, a fault, the config) and
// appends events to the ledger in the same transaction.
func (s *Store) PutDoc(kind, id string, v any, events ...Event) error {
	doc, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", kind, id, err)
	}
	if err := s.update(func(b *batch) error { return b.set([]byte(pDoc+kind+"/"+id), doc) }, events...); err != nil {
		return fmt.Errorf("put %s/%s: %w", kind, id, err)
	}
	return nil
}

// DeleteDoc removes a document, appending events in the same transaction.
func (s *Store) DeleteDoc(kind, id string, events ...Event) error {
	return s.update(func(b *batch) error { return b.delete([]byte(pDoc + kind + "/" + id)) }, events...)
}

// GetDoc loads a document into v; found is false when there is none.
func (s *Store) GetDoc(kind, id string, v any) (found bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(pDoc + kind + "/" + id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return it.Value(func(b []byte) error { return json.Unmarshal(b, v) })
	})
	return found, err
}

// Docs calls fn with the id and raw JSON of every document of kind.
func (s *Store) Docs(kind string, fn func(id string, raw []byte) error) error {
	prefix := []byte(pDoc + kind + "/")
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(prefix):])
			if err := it.Item().Value(func(b []byte) error { return fn(id, b) }); err != nil {
				return err
			}
		}
		return nil
	})
}
