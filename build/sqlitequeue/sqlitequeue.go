// Package sqlitequeue is the dock queue's lease and receipt done on SQLite, the store a dock
// vendor would pick: the peer `make bench-offload` measures the Badger queue against.
//
// It does per state change what dock/queue does: read the record, step it with queue.Next,
// write the record's JSON and the pending index, append a hash-chained ledger entry (the same
// JSON and SHA-256 as queue.Entry), and write the ledger head and the tally once per group;
// concurrent callers' updates are applied in arrival order by one committer, up to 64 in one
// transaction, one fsync for the group. SQLite runs in WAL mode with synchronous=FULL
// (modernc.org/sqlite, no cgo). Benchmark-only: the agent never links it (agent/deps_test.go).
package sqlitequeue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"dock/queue"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

const schema = `
CREATE TABLE IF NOT EXISTS rec (id TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (k TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, line BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;`

// maxGroup bounds the updates in one transaction, as dock/queue's committer does.
const maxGroup = 64

// Store is the queue on SQLite.
type Store struct {
	db     *sql.DB
	conn   *sql.Conn // the committer's
	st     *stmts    // prepared on conn
	writes chan *write
	stop   chan struct{}
	done   chan struct{}

	mu    sync.Mutex // guards the committed head and tally
	seq   uint64
	head  string
	tally tally
}

// Open opens (or creates) the queue in dir/queue.db.
func Open(dir string) (*Store, error) {
	dsn := "file:" + filepath.Join(dir, "queue.db") + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", dir, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("schema: %w", err)
	}
	s := &Store{db: db, writes: make(chan *write), stop: make(chan struct{}), done: make(chan struct{}), tally: newTally()}
	var head []byte
	switch err := db.QueryRow(`SELECT v FROM meta WHERE k='head'`).Scan(&head); {
	case errors.Is(err, sql.ErrNoRows):
		s.head = "0000000000000000000000000000000000000000000000000000000000000000"
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("ledger head: %w", err)
	default:
		var h struct {
			Seq  uint64 `json:"seq"`
			Hash string `json:"hash"`
		}
		if err := json.Unmarshal(head, &h); err != nil {
			db.Close()
			return nil, fmt.Errorf("ledger head: %w", err)
		}
		s.seq, s.head = h.Seq, h.Hash
	}
	var t []byte
	if err := db.QueryRow(`SELECT v FROM meta WHERE k='tally'`).Scan(&t); err == nil {
		if err := json.Unmarshal(t, &s.tally); err != nil {
			db.Close()
			return nil, fmt.Errorf("tally: %w", err)
		}
	} else if !errors.Is(err, sql.ErrNoRows) {
		db.Close()
		return nil, fmt.Errorf("tally: %w", err)
	}
	if s.conn, err = db.Conn(context.Background()); err == nil {
		s.st, err = prepare(s.conn)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("committer connection: %w", err)
	}
	go s.committer()
	return s, nil
}

// Close stops the committer and closes the database.
func (s *Store) Close() error {
	close(s.stop)
	<-s.done
	s.st.close()
	s.conn.Close()
	return s.db.Close()
}

// Count is how many recordings the tally counts.
func (s *Store) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.tally.Count {
		n += c
	}
	return n
}

// Import writes recs in one transaction, with one ledger entry, as queue.Store.Import does.
func (s *Store) Import(recs []queue.Recording, why string) error {
	return s.update(func(b *batch) error {
		for _, r := range recs {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if _, err := b.st.putRec.Exec(r.ID, v); err != nil {
				return fmt.Errorf("import %s: %w", r.ID, err)
			}
			if r.State == queue.Spooled {
				if err := b.setPending(r); err != nil {
					return err
				}
			}
			b.tally.add(r, 1)
		}
		return nil
	}, queue.Event{Kind: queue.EvInput, Detail: fmt.Sprintf("imported %d records: %s", len(recs), why)})
}

// Pending returns up to n recordings waiting to upload, in upload order.
func (s *Store) Pending(n int) ([]queue.Recording, error) {
	rows, err := s.db.Query(`SELECT rec.v FROM pending JOIN rec ON rec.id = substr(pending.k, 23) ORDER BY pending.k LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	defer rows.Close()
	var out []queue.Recording
	for rows.Next() {
		var v []byte
		var r queue.Recording
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("pending: %w", err)
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("pending: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Lease hands recording id to transfer.
func (s *Store) Lease(id, transfer string) (queue.Recording, error) {
	return s.transition(id, queue.StepLease, func(r *queue.Recording) error {
		r.Transfer = transfer
		return nil
	}, queue.Event{Kind: queue.EvAccess, Recording: id, Detail: "read for upload, transfer " + transfer})
}

// Release returns a leased recording to the queue.
func (s *Store) Release(id, why string) (queue.Recording, error) {
	return s.transition(id, queue.StepRelease, func(r *queue.Recording) error {
		r.Transfer = ""
		return nil
	}, queue.Event{Kind: queue.EvUploaded, Recording: id, Detail: "transfer ended without receipt: " + why})
}

// ReleaseAll releases every lease the tally names, as the agent does at start.
func (s *Store) ReleaseAll(why string) (int, error) {
	s.mu.Lock()
	ids := slices.Sorted(maps.Keys(s.tally.Leased))
	s.mu.Unlock()
	for _, id := range ids {
		if _, err := s.Release(id, why); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// Verify applies central's receipt: a matching hash and size verify the recording.
func (s *Store) Verify(id, sha string, size int64) (queue.Recording, error) {
	return s.transition(id, queue.StepVerify, func(r *queue.Recording) error {
		if r.SHA256 != sha || r.Size != size {
			return fmt.Errorf("verify %s: %w", id, queue.ErrHashMismatch)
		}
		r.Transfer = ""
		r.Acked = r.Size
		r.VerifiedAt = time.Now()
		return nil
	}, queue.Event{Kind: queue.EvVerified, Recording: id, Detail: "central receipt sha256 " + sha})
}

// transition steps recording id, lets change adjust it, and appends ev, in one update.
func (s *Store) transition(id string, step queue.Step, change func(*queue.Recording) error, ev queue.Event) (queue.Recording, error) {
	var out queue.Recording
	err := s.update(func(b *batch) error {
		r, err := b.getRec(id)
		if err != nil {
			return err
		}
		was := r
		next, err := queue.Next(r.State, step)
		if err != nil {
			return err
		}
		if r.State == queue.Spooled && next != queue.Spooled {
			if _, err := b.st.delPending.Exec(pendingKey(r)); err != nil {
				return err
			}
		}
		if err := change(&r); err != nil {
			return err
		}
		r.State = next
		if next == queue.Spooled {
			if err := b.setPending(r); err != nil {
				return err
			}
		}
		b.tally.add(was, -1)
		b.tally.add(r, 1)
		out = r
		return b.putRec(r)
	}, ev)
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", step, id, err)
	}
	return out, nil
}

// pendingKey orders the pending index as dock/queue's does: class, start, id (22 bytes
// before the id).
func pendingKey(r queue.Recording) string {
	rank := 2
	switch {
	case r.Hold != "":
		rank = 0
	case r.Class == queue.Evidence:
		rank = 1
	}
	return fmt.Sprintf("%d%020d/%s", rank, r.Start.UnixNano(), r.ID)
}

// sealedEntry is dock/queue's ledger line for ev after (seq, prev): its JSON with the
// SHA-256 of prev and the JSON without the hash.
func sealedEntry(seq uint64, prev string, ev queue.Event) (hash string, line []byte, err error) {
	e := queue.Entry{Seq: seq, Time: time.Now(), Event: ev, Prev: prev}
	b, err := json.Marshal(e)
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(b)
	hash = hex.EncodeToString(h.Sum(nil))
	// The hash is the last field, empty in what was hashed: fill it in (as dock/queue does).
	const empty = `"hash":""}`
	if !bytes.HasSuffix(b, []byte(empty)) {
		return "", nil, fmt.Errorf("ledger entry %d: unexpected JSON", seq)
	}
	line = append(append(append(b[:len(b)-len(`""}`)], '"'), hash...), `"}`...)
	return hash, line, nil
}
