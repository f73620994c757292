package main

import "dock/build/sqlitequeue"

// The SQLite peer (build/sqlitequeue), for -engine sqlite.
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
