//go:build sqlite

package main

import "dock/build/sqlitequeue"

// The SQLite peer (build/sqlitequeue) is linked only with -tags sqlite: its compile is
// long, and nothing but this benchmark and its own test needs it.
func init() {
	openSQLite = func(dir string) (counted, error) {
		s, err := sqlitequeue.Open(dir)
		if err != nil {
			return nil, err
		}
		return sqliteStore{s}, nil
	}
}

type sqliteStore struct{ *sqlitequeue.Store }

func (s sqliteStore) Count() (int, error) { return s.Store.Count(), nil }
