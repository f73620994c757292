package queue

import (
	"encoding/json"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// Import writes records in bulk (an index rebuilt from spool headers and central's
// receipts, or a benchmark's queue), with one ledger entry for the batch. Existing ids are
// overwritten: only for an empty or rebuilt index.
func (s *Store) Import(recs []Recording, why string) error {
	s.mu.Lock()
	t := s.tally.clone()
	err := s.db.View(func(txn *badger.Txn) error {
		for _, r := range recs {
			if old, err := getRec(txnReader{txn}, r.ID); err == nil {
				t.add(old, -1)
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
			t.add(r, 1)
		}
		return nil
	})
	if err == nil {
		err = s.importBatch(recs, t)
	}
	if err == nil {
		s.tally = t
		s.publish()
	}
	s.landed.forget() // it may have overwritten some
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return s.Record(Event{Kind: EvInput, Detail: fmt.Sprintf("imported %d records: %s", len(recs), why)})
}

func (s *Store) importBatch(recs []Recording, t tally) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := wb.Set(recKey(r.ID), b); err != nil {
			return err
		}
		if r.State == Spooled {
			if err := wb.Set(pendingKey(r), nil); err != nil {
				return err
			}
		}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := wb.Set([]byte(kTally), b); err != nil {
		return err
	}
	err = wb.Flush()
	s.heads.reset() // after the batch is visible, or what of it is
	return err
}
