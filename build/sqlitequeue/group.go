package sqlitequeue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"time"

	"dock/queue"
)

// write is one update waiting for the committer.
type write struct {
	fn     func(b *batch) error
	events []queue.Event
	done   chan error
}

// batch is one group's transaction as its updates see it.
type batch struct {
	st    *stmts
	tally tally
}

// stmts are the statements every update uses, prepared once on the committer's connection.
type stmts struct {
	begin, commit, rollback                                    *sql.Stmt
	getRec, putRec, setPending, delPending, putLedger, putMeta *sql.Stmt
}

func (b *batch) getRec(id string) (queue.Recording, error) {
	var r queue.Recording
	var v []byte
	err := b.st.getRec.QueryRow(id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("recording %s: %w", id, queue.ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(v, &r)
}

func (b *batch) putRec(r queue.Recording) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = b.st.putRec.Exec(r.ID, v)
	return err
}

func (b *batch) setPending(r queue.Recording) error {
	_, err := b.st.setPending.Exec(pendingKey(r))
	return err
}

// update hands fn and its ledger events to the committer and waits until the transaction
// that holds them is durable (or fn failed, which changes nothing).
func (s *Store) update(fn func(b *batch) error, events ...queue.Event) error {
	w := &write{fn: fn, events: events, done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.stop:
		return errors.New("sqlitequeue: closed")
	}
	return <-w.done
}

// committer applies waiting updates in groups of up to maxGroup, in arrival order, each
// group in one transaction, until the store closes.
func (s *Store) committer() {
	defer close(s.done)
	for {
		var group []*write
		select {
		case <-s.stop:
			return
		case w := <-s.writes:
			group = append(group, w)
		}
		// Callers answered by the last commit are waking: let them hand in their next
		// update before this group closes (as dock/queue's committer does).
		runtime.Gosched()
	more:
		for len(group) < maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break more
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup commits group's updates in one transaction and answers each; an update that
// fails is dropped and the others applied again without it.
func (s *Store) commitGroup(group []*write) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(group) > 0 {
		failed, seq, head, t, err := s.apply(group)
		if failed >= 0 {
			group[failed].done <- err
			group = slices.Delete(group, failed, failed+1)
			continue
		}
		if err == nil {
			s.seq, s.head, s.tally = seq, head, t
		}
		for _, w := range group {
			w.done <- err
		}
		return
	}
}

// apply runs group in one transaction and commits it. failed is the index of the update
// that failed (the transaction rolled back), or -1 with the commit's error.
func (s *Store) apply(group []*write) (failed int, seq uint64, head string, t tally, err error) {
	seq, head, t = s.seq, s.head, s.tally.clone()
	if _, err := s.st.begin.Exec(); err != nil {
		return -1, 0, "", t, fmt.Errorf("begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			s.st.rollback.Exec()
		}
	}()
	b := &batch{st: s.st, tally: t}
	for i, w := range group {
		err = w.fn(b)
		for _, ev := range w.events {
			if err != nil {
				break
			}
			seq++
			var line []byte
			if head, line, err = sealedEntry(seq, head, ev); err == nil {
				_, err = s.st.putLedger.Exec(seq, line)
			}
		}
		if err != nil {
			return i, 0, "", t, err
		}
	}
	hv, _ := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Hash string `json:"hash"`
	}{seq, head})
	tv, err := json.Marshal(b.tally)
	if err == nil {
		_, err = s.st.putMeta.Exec("head", hv)
	}
	if err == nil {
		_, err = s.st.putMeta.Exec("tally", tv)
	}
	if err == nil {
		_, err = s.st.commit.Exec()
		committed = err == nil
	}
	if err != nil {
		return -1, 0, "", t, fmt.Errorf("commit: %w", err)
	}
	return -1, seq, head, b.tally, nil
}

func prepare(conn *sql.Conn) (*stmts, error) {
	var st stmts
	for _, p := range []struct {
		to *(*sql.Stmt)
		q  string
	}{
		{&st.begin, `BEGIN IMMEDIATE`},
		{&st.commit, `COMMIT`},
		{&st.rollback, `ROLLBACK`},
		{&st.getRec, `SELECT v FROM rec WHERE id = ?`},
		{&st.putRec, `INSERT OR REPLACE INTO rec (id, v) VALUES (?, ?)`},
		{&st.setPending, `INSERT OR REPLACE INTO pending (k) VALUES (?)`},
		{&st.delPending, `DELETE FROM pending WHERE k = ?`},
		{&st.putLedger, `INSERT INTO ledger (seq, line) VALUES (?, ?)`},
		{&st.putMeta, `INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)`},
	} {
		s, err := conn.PrepareContext(context.Background(), p.q)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("prepare %q: %w", p.q, err)
		}
		*p.to = s
	}
	return &st, nil
}

func (st *stmts) close() {
	for _, s := range []*sql.Stmt{st.begin, st.commit, st.rollback, st.getRec, st.putRec, st.setPending, st.delPending, st.putLedger, st.putMeta} {
		if s != nil {
			s.Close()
		}
	}
}

// tally is the queue's count of recordings by state and class, and the leased ones, as
// dock/queue keeps it (written once per group).
type tally struct {
	Count   map[queue.State]int   `json:"count"`
	Bytes   map[queue.State]int64 `json:"bytes"`
	Waiting map[string]int        `json:"waiting"`
	Leased  map[string]time.Time  `json:"leased,omitempty"`
}

func newTally() tally {
	return tally{Count: map[queue.State]int{}, Bytes: map[queue.State]int64{}, Waiting: map[string]int{}, Leased: map[string]time.Time{}}
}

func (t tally) clone() tally {
	c := newTally()
	maps.Copy(c.Count, t.Count)
	maps.Copy(c.Bytes, t.Bytes)
	maps.Copy(c.Waiting, t.Waiting)
	maps.Copy(c.Leased, t.Leased)
	return c
}

// add counts r in (sign 1) or out (sign -1).
func (t *tally) add(r queue.Recording, sign int) {
	t.Count[r.State] += sign
	t.Bytes[r.State] += int64(sign) * r.Size
	if r.State == queue.Spooled || r.State == queue.Uploading {
		t.Waiting[string(r.Class)] += sign
	}
	if r.State == queue.Uploading {
		if sign > 0 {
			t.Leased[r.ID] = r.Start
		} else {
			delete(t.Leased, r.ID)
		}
	}
}
