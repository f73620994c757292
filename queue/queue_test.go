package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func footage(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 0))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestNextIsTheOnlyWayBetweenStates(t *testing.T) {
	tests := []struct {
		from State
		step Step
		to   State
		ok   bool
	}{
		{Spooled, StepLease, Uploading, true},
		{Uploading, StepRelease, Spooled, true},
		{Uploading, StepVerify, Verified, true},
		{Spooled, StepVerify, Verified, true},
		{Verified, StepVerify, Verified, true},
		{Verified, StepFree, Freed, true},
		{Spooled, StepFree, Spooled, false},
		{Uploading, StepFree, Uploading, false},
		{Uploading, StepLease, Uploading, false},
		{Freed, StepLease, Freed, false},
		{Freed, StepVerify, Freed, false},
	}
	for _, tc := range tests {
		got, err := Next(tc.from, tc.step)
		if (err == nil) != tc.ok || got != tc.to {
			t.Errorf("Next(%s, %s) = %s, %v; want %s ok=%v", tc.from, tc.step, got, err, tc.to, tc.ok)
		}
	}
}

func TestOffloadIsWriteOnceAndHashed(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	data := footage(3<<20+17, 1)
	rec := Recording{ID: "CAM1_a.mp4", Name: "a.mp4", Device: "CAM1", Size: int64(len(data))}
	r, _, err := s.Offload(context.Background(), rec, bytes.NewReader(data), Event{Kind: EvOffloaded, Device: "CAM1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.SHA256 != sum(data) || r.State != Spooled {
		t.Fatalf("offloaded %+v", r)
	}
	info, err := os.Stat(s.spool.path(r.ID))
	if err != nil || info.Mode().Perm()&0o222 != 0 {
		t.Fatalf("spool file not read-only: %v %v", info.Mode(), err)
	}
	h, err := ReadHeader(s.spool.path(r.ID))
	if err != nil || h.Record.SHA256 != r.SHA256 || h.Record.Device != "CAM1" {
		t.Fatalf("header %+v, %v", h, err)
	}
	f, err := s.Open(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("spooled bytes differ from the source")
	}
	// Offloading the same bytes again compares them and reports the held copy.
	again, held, err := s.Offload(context.Background(), rec, bytes.NewReader(data), Event{Kind: EvOffloaded})
	if err != nil || !held || again.SHA256 != r.SHA256 {
		t.Fatalf("second offload = %+v, held %v, %v", again, held, err)
	}
}

// Other bytes under a held id are never taken for the held copy, whatever their size: the
// caller learns their hash and must file them apart. The held copy is left untouched.
func TestOffloadOfOtherBytesUnderAHeldIDConflicts(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	data, other := footage(200_000, 1), footage(200_000, 2)
	rec := Recording{ID: "CAM1_a.mp4", Name: "a.mp4", Device: "CAM1", Size: int64(len(data))}
	first, _, err := s.Offload(context.Background(), rec, bytes.NewReader(data), Event{Kind: EvOffloaded})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  []byte
		size int64
	}{
		{"same size, other bytes", other, int64(len(data))},
		{"shorter than announced", data[:1000], int64(len(data))},
		{"longer than announced", append(append([]byte(nil), data...), 0), int64(len(data))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rec
			r.Size = tc.size
			got, held, err := s.Offload(context.Background(), r, bytes.NewReader(tc.src), Event{Kind: EvOffloaded})
			if err == nil || held {
				t.Fatalf("offload of other bytes under %s = %+v, held %v, nil error: the camera's copy could be deleted", rec.ID, got, held)
			}
		})
	}
	var conflict *ConflictError
	_, _, err = s.Offload(context.Background(), rec, bytes.NewReader(other), Event{Kind: EvOffloaded})
	if !errors.As(err, &conflict) || conflict.SHA256 != sum(other) || conflict.Held != first.SHA256 {
		t.Fatalf("conflict = %+v (%v)", conflict, err)
	}
	v, held, err := s.Offload(context.Background(), Recording{ID: VariantID(rec.ID, conflict.SHA256), Name: "a.mp4", Device: "CAM1", Size: int64(len(other))}, bytes.NewReader(other), Event{Kind: EvOffloaded})
	if err != nil || held || v.SHA256 != sum(other) {
		t.Fatalf("variant = %+v, held %v, %v", v, held, err)
	}
	if r, err := s.Get(rec.ID); err != nil || r.SHA256 != first.SHA256 {
		t.Fatalf("held copy changed: %+v, %v", r, err)
	}
}

// Two offloads of one id at once (two bays whose cameras claim one serial): one copies,
// the other is refused while it runs and never sees, let alone removes, the first's file.
func TestConcurrentOffloadsOfOneIDDoNotMix(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	data, other := footage(3<<20, 1), footage(3<<20, 2)
	rec := Recording{ID: "CAM1_a.mp4", Name: "a.mp4", Device: "CAM1", Size: int64(len(data))}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Offload(context.Background(), rec, pr, Event{Kind: EvOffloaded})
		done <- err
	}()
	if _, err := pw.Write(data[:1<<20]); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Offload(context.Background(), rec, bytes.NewReader(other), Event{Kind: EvOffloaded})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second offload while the first runs: %v, want ErrBusy", err)
	}
	go func() { pw.Write(data[1<<20:]); pw.Close() }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(rec.ID); err != nil || r.SHA256 != sum(data) {
		t.Fatalf("record %+v, %v", r, err)
	}
	f, err := s.Open(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, data) {
		t.Fatal("spool file does not hold the first camera's bytes")
	}
}

// A spool file appearing at the final name between the copy and its rename (another
// writer) is never replaced.
func TestSpoolWriteNeverReplaces(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	data := footage(10_000, 1)
	rec := Recording{ID: "CAM1_b.mp4", Size: int64(len(data))}
	if err := os.WriteFile(s.spool.path(rec.ID), []byte("first"), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := s.spool.Write(context.Background(), rec, bytes.NewReader(data)); !errors.Is(err, ErrExists) {
		t.Fatalf("write over an existing spool file: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(s.spool.path(rec.ID)); string(b) != "first" {
		t.Fatalf("existing spool file replaced: %q", b)
	}
}

func TestOffloadCutShortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	data := footage(1000, 2)
	tests := []struct {
		name string
		src  io.Reader
		size int64
	}{
		{"pulled mid-copy", bytes.NewReader(data[:400]), 1000},
		{"longer than announced", bytes.NewReader(data), 500},
		{"read error", io.MultiReader(bytes.NewReader(data[:10]), errReader{}), 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.Offload(context.Background(), Recording{ID: "X_" + tc.name[:4], Size: tc.size}, tc.src, Event{Kind: EvOffloaded})
			if err == nil {
				t.Fatal("no error")
			}
			if _, err := s.Get("X_" + tc.name[:4]); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a record was left: %v", err)
			}
			left, _ := os.ReadDir(s.spool.dir + "/tmp")
			if len(left) != 0 {
				t.Fatalf("partial files left: %v", left)
			}
		})
	}
}

// A crash between the spool file's rename and its commit leaves a file with no record;
// the next offload of that recording must not be blocked by it.
func TestOffloadReplacesUncommittedSpoolFile(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	data := footage(5000, 3)
	rec := Recording{ID: "CAM_orphan.mp4", Size: int64(len(data))}
	if _, err := s.spool.Write(context.Background(), rec, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Offload(context.Background(), rec, bytes.NewReader(data), Event{Kind: EvOffloaded})
	if err != nil || r.SHA256 != sum(data) {
		t.Fatalf("offload over an orphan: %+v, %v", r, err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("I/O error on camera storage") }

func commit(t *testing.T, s *Store, id string, start time.Time, class Class, hold string) Recording {
	t.Helper()
	data := []byte("footage of " + id)
	r, _, err := s.Offload(context.Background(), Recording{ID: id, Device: "D", Size: int64(len(data)), Start: start, Class: class, Hold: hold}, bytes.NewReader(data), Event{Kind: EvOffloaded})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A throttled spool (the simulator's slow disk) caps all offloads together, and still
// stores every byte.
func TestThrottledSpoolCapsAllWritersTogether(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	s.Spool().Throttle(8 << 20)
	type result struct {
		r   Recording
		err error
	}
	data := [][]byte{footage(2<<20, 1), footage(2<<20, 2)}
	results := make(chan result, len(data))
	start := time.Now()
	for i, d := range data {
		go func() {
			rec := Recording{ID: fmt.Sprintf("CAM1_%d.mp4", i), Name: "x.mp4", Device: "CAM1", Size: int64(len(d))}
			r, _, err := s.Offload(context.Background(), rec, bytes.NewReader(d), Event{Kind: EvOffloaded})
			results <- result{r, err}
		}()
	}
	for range data {
		res := <-results
		if res.err != nil {
			t.Fatal(res.err)
		}
		i := 0
		if res.r.ID == "CAM1_1.mp4" {
			i = 1
		}
		if res.r.SHA256 != sum(data[i]) {
			t.Fatalf("%s stored with hash %s", res.r.ID, res.r.SHA256)
		}
	}
	// 4 MiB through one 8 MiB/s device cannot take less than half a second (less the
	// 20 ms a late writer may catch up).
	if took := time.Since(start); took < 470*time.Millisecond {
		t.Fatalf("two 2 MiB offloads took %s: faster than the spool's 8 MiB/s", took)
	}
}

func TestPendingOrderHoldsEvidencePatrolOldestFirst(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	commit(t, s, "patrol-new", t0.Add(2*time.Hour), Patrol, "")
	commit(t, s, "patrol-old", t0, Patrol, "")
	commit(t, s, "evidence", t0.Add(3*time.Hour), Evidence, "")
	commit(t, s, "held", t0.Add(5*time.Hour), Patrol, HoldDispute)
	p, err := s.Pending(10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range p {
		ids = append(ids, r.ID)
	}
	want := []string{"held", "evidence", "patrol-old", "patrol-new"}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", ids, want)
	}
	// A leased recording is out of the pending list until released.
	if _, err := s.Lease("held", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lease("held", "t2"); err == nil {
		t.Fatal("a recording was leased twice")
	}
	if p, _ := s.Pending(10); len(p) != 3 {
		t.Fatalf("%d pending while one is leased", len(p))
	}
	if _, err := s.Release("held", "test"); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(10); len(p) != 4 || p[0].ID != "held" {
		t.Fatalf("release did not requeue: %v", p)
	}
}

func TestFreeOnlyAfterMatchingReceiptAndHoldRelease(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	r := commit(t, s, "rec", time.Now(), Patrol, "")
	h := commit(t, s, "held", time.Now(), Patrol, HoldObstruction)

	if err := s.Free("rec"); err == nil {
		t.Fatal("freed an unverified recording")
	}
	if _, err := s.Lease("rec", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("rec", sum([]byte("forged")), r.Size); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("forged receipt: %v", err)
	}
	if err := s.Free("rec"); err == nil {
		t.Fatal("freed after a forged receipt")
	}
	if _, err := os.Stat(s.spool.path("rec")); err != nil {
		t.Fatal("spool copy gone after a forged receipt")
	}
	if _, err := s.Verify("rec", r.SHA256, r.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("rec", r.SHA256, r.Size); err != nil {
		t.Fatalf("repeated receipt: %v", err)
	}
	if err := s.Free("rec"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.spool.path("rec")); !os.IsNotExist(err) {
		t.Fatal("spool copy still there after free")
	}

	if _, err := s.Verify("held", h.SHA256, h.Size); err != nil {
		t.Fatal(err)
	}
	if err := s.Free("held"); err == nil {
		t.Fatal("freed a held recording before central released it")
	}
	if _, err := s.ReleaseHold("held", "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Free("held"); err != nil {
		t.Fatal(err)
	}

	var kinds []string
	_ = s.Ledger(1, func(e Entry) error { kinds = append(kinds, e.Kind); return nil })
	want := map[string]bool{EvOffloaded: true, EvRejected: true, EvVerified: true, EvFreed: true, EvHold: true, EvAccess: true}
	for _, k := range kinds {
		delete(want, k)
	}
	if len(want) != 0 {
		t.Fatalf("ledger lacks %v (has %v)", want, kinds)
	}
}

func TestLedgerVerifiesAndNamesTheFirstBadEntry(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	for i := 0; i < 20; i++ {
		if err := s.Record(Event{Kind: EvSlot, Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.VerifyLedger(); err != nil || n != 20 {
		t.Fatalf("verify = %d, %v", n, err)
	}
	s.Close()
	// The chain continues across a restart.
	s = openStore(t, dir)
	defer s.Close()
	if err := s.Record(Event{Kind: EvSlot, Detail: "after restart"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.VerifyLedger(); err != nil || n != 21 {
		t.Fatalf("verify after restart = %d, %v", n, err)
	}
	// Rewrite entry 7's detail behind the store's back.
	err := s.db.Update(func(txn *badger.Txn) error {
		var e Entry
		it, _ := txn.Get(ledgerKey(7))
		_ = it.Value(func(v []byte) error { return jsonUnmarshal(v, &e) })
		e.Detail = "rewritten"
		return txn.Set(ledgerKey(7), jsonMarshal(e))
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.VerifyLedger()
	var bad *BadEntry
	if !errors.As(err, &bad) || bad.Seq != 7 {
		t.Fatalf("tampering reported as %v", err)
	}
}

// More than a memtable of records, closed and reopened, every key back: the guard
// against the 32-bit allocator wrap (run as armv7 under qemu-user by make test).
func TestReopenKeepsEveryRecord(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	const n = 60000
	wb := s.db.NewWriteBatch()
	for i := 0; i < n; i++ {
		r := Recording{ID: fmt.Sprintf("CAM%03d_%08d.mp4", i%50, i), Device: "CAM", Size: int64(i), SHA256: sum([]byte{byte(i)}), State: Spooled, Start: time.Unix(int64(i), 0)}
		if err := wb.Set(recKey(r.ID), jsonMarshal(r)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	seen := 0
	err := s.Each(func(r Recording) error {
		seen++
		return nil
	})
	if err != nil || seen != n {
		t.Fatalf("after reopen %d of %d records (%v)", seen, n, err)
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		r, err := s.Get(fmt.Sprintf("CAM%03d_%08d.mp4", i%50, i))
		if err != nil || r.Size != int64(i) {
			t.Fatalf("record %d: %+v %v", i, r, err)
		}
	}
}

// Ids never collide for files that differ in serial, name, start or size, however the
// names are spelled, and are safe as file names.
func TestRecordingIDsNeverCollide(t *testing.T) {
	start := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	type file struct {
		device, name string
		start        time.Time
		size         int64
	}
	tests := []struct {
		name string
		a, b file
	}{
		{"serial and name run together", file{"CAMA", "X_Y.mp4", start, 10}, file{"CAMA_X", "Y.mp4", start, 10}},
		{"unsafe characters", file{"CAM", "a b.mp4", start, 10}, file{"CAM", "a-b.mp4", start, 10}},
		{"path-like", file{"CAM", "../../x", start, 10}, file{"CAM", "..-..-x", start, 10}},
		{"folders", file{"CAM", "DCIM/100MEDIA/V1.MP4", start, 10}, file{"CAM", "DCIM/100MEDIA_V1.MP4", start, 10}},
		{"name reused, new start", file{"CAM", "V1.MP4", start, 10}, file{"CAM", "V1.MP4", start.Add(time.Second), 10}},
		{"name reused, new size", file{"CAM", "V1.MP4", start, 10}, file{"CAM", "V1.MP4", start, 11}},
		{"sub-second start", file{"CAM", "V1.MP4", start, 10}, file{"CAM", "V1.MP4", start.Add(time.Millisecond), 10}},
		{"long names cut alike", file{"CAM", strings.Repeat("x", 300) + "1", start, 10}, file{"CAM", strings.Repeat("x", 300) + "2", start, 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := RecordingID(tc.a.device, tc.a.name, tc.a.start, tc.a.size)
			b := RecordingID(tc.b.device, tc.b.name, tc.b.start, tc.b.size)
			if a == b {
				t.Fatalf("both are %q", a)
			}
			for _, id := range []string{a, b, VariantID(a, strings.Repeat("f", 64))} {
				if !validID(id) {
					t.Errorf("id %q is not safe as a file name", id)
				}
			}
		})
	}
	if RecordingID("CAM", "V1.MP4", start, 10) != RecordingID("CAM", "V1.MP4", start.In(time.FixedZone("x", 3600)), 10) {
		t.Error("one instant in two time zones gives two ids")
	}
}

// Footage at rest is encrypted under the dock's key: the spool file holds no plaintext,
// the store reads it back exactly, from any offset, and another key cannot.
func TestEncryptedSpool(t *testing.T) {
	dir := t.TempDir()
	key, err := LoadKey(dir + "/keys/spool.key")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadKey(dir + "/keys/spool.key")
	if err != nil || again.String() != key.String() {
		t.Fatal("the key did not persist")
	}
	if info, _ := os.Stat(dir + "/keys/spool.key"); info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", info.Mode())
	}
	s := openStore(t, dir+"/q")
	s.Encrypt(key)
	data := footage(1<<20+12345, 9)
	r, _, err := s.Offload(context.Background(), Recording{ID: "ENC_a.mp4", Size: int64(len(data))}, bytes.NewReader(data), Event{Kind: EvOffloaded})
	if err != nil {
		t.Fatal(err)
	}
	if r.SHA256 != sum(data) {
		t.Fatal("hash is not the original's")
	}
	raw, _ := os.ReadFile(s.spool.path(r.ID))
	for _, off := range []int{0, 70000, len(data) - 64} {
		if bytes.Contains(raw, data[off:off+64]) {
			t.Fatalf("plaintext at offset %d found in the spool file", off)
		}
	}
	f, err := s.Open(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	mid := make([]byte, 1000)
	if _, err := f.ReadAt(mid, 700000); err != nil || !bytes.Equal(mid, data[700000:701000]) {
		t.Fatalf("random access read: %v", err)
	}
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("decrypted footage differs")
	}
	s.Close()

	other, _ := LoadKey(dir + "/other.key")
	s2 := openStore(t, dir+"/q")
	defer s2.Close()
	s2.Encrypt(other)
	if _, err := s2.Open(r.ID); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("opened with another key: %v", err)
	}
}

// Stats comes from a tally kept beside the records; after every kind of change, and after
// a reopen, it equals a count of the records one by one. A store without a tally (from
// before it) is counted once at open.
func TestStatsTallyMatchesAScan(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	check := func(when string) {
		t.Helper()
		got, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.scanStats()
		if err != nil {
			t.Fatal(err)
		}
		var oldest time.Time
		_ = s.Each(func(r Recording) error {
			if (r.State == Spooled || r.State == Uploading) && (oldest.IsZero() || r.Start.Before(oldest)) {
				oldest = r.Start
			}
			return nil
		})
		if fmt.Sprint(got.Count, got.Bytes, got.Waiting) != fmt.Sprint(want.Count, want.Bytes, want.Waiting) || !got.Oldest.Equal(oldest) {
			t.Fatalf("%s: stats %v %v %v oldest %s; a scan counts %v %v %v oldest %s", when,
				got.Count, got.Bytes, got.Waiting, got.Oldest, want.Count, want.Bytes, want.Waiting, oldest)
		}
	}
	a := commit(t, s, "CAM-1_A.mp4", t0, Patrol, "")
	b := commit(t, s, "CAM-1_B.mp4", t0.Add(-time.Hour), Evidence, "")
	c := commit(t, s, "CAM-1_C.mp4", t0.Add(time.Hour), Patrol, "dispute")
	commit(t, s, "CAM-1_D.mp4", t0.Add(2*time.Hour), Patrol, "")
	check("after commits")
	steps := []struct {
		what string
		do   func() error
	}{
		{"lease the oldest", func() error { _, err := s.Lease(b.ID, "t1"); return err }},
		{"release it", func() error { _, err := s.Release(b.ID, "test"); return err }},
		{"lease again", func() error { _, err := s.Lease(b.ID, "t2"); return err }},
		{"verify", func() error { _, err := s.Verify(b.ID, b.SHA256, b.Size); return err }},
		{"free", func() error { return s.Free(b.ID) }},
		{"verify a hold", func() error { _, err := s.Verify(c.ID, c.SHA256, c.Size); return err }},
		{"withdraw", func() error { return s.Withdraw("CAM-1_D.mp4", "test") }},
		{"import", func() error {
			return s.Import([]Recording{{ID: "CAM-2_E.mp4", Size: 5, Start: t0.Add(-3 * time.Hour), State: Spooled, Class: Evidence}, a}, "test")
		}},
		{"a refused step", func() error {
			if _, err := s.Lease(b.ID, "t3"); err == nil {
				return errors.New("a freed recording was leased")
			}
			return nil
		}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		check("after " + st.what)
	}
	s.Close()
	s = openStore(t, dir)
	check("after reopen")
	// A store from before the tally: drop it, and open counts once.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(kTally)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	check("after a reopen without a tally")
}

// A power cut between Badger's creating a log file and sizing it leaves an empty .mem or
// .vlog that badger.Open refuses (dgraph-io/badger#2207); Open removes them and keeps
// every record.
func TestOpenSurvivesEmptyLogsLeftByAPowerCut(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	r := commit(t, s, "CAM-1_A.mp4", time.Now(), Patrol, "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, "db", name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, dir)
	defer s.Close()
	if got, err := s.Get(r.ID); err != nil || got.SHA256 != r.SHA256 {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
}

// Updates from many goroutines are committed in groups: those that fail change nothing,
// the others all land, each once, and the ledger's chain holds.
func TestGroupCommitKeepsEachUpdateAtomic(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	var recs []Recording
	for i := range 40 {
		recs = append(recs, commit(t, s, fmt.Sprintf("CAM-G_%02d.mp4", i), t0.Add(time.Duration(i)*time.Minute), Patrol, ""))
	}
	before := s.LedgerHead()
	errs := make(chan error, 2*len(recs))
	for _, r := range recs {
		go func() { _, err := s.Lease(r.ID, "t"); errs <- err }()
		go func() { _, err := s.Lease(r.ID+".missing", "t"); errs <- err }() // fails: no such recording
	}
	ok := 0
	for range 2 * len(recs) {
		if err := <-errs; err == nil {
			ok++
		} else if !errors.Is(err, ErrNotFound) {
			t.Errorf("unexpected failure: %v", err)
		}
	}
	if ok != len(recs) {
		t.Fatalf("%d leases succeeded, want %d", ok, len(recs))
	}
	for _, r := range recs {
		if got, _ := s.Get(r.ID); got.State != Uploading {
			t.Fatalf("%s is %s after its lease", r.ID, got.State)
		}
	}
	if n, err := s.VerifyLedger(); err != nil || s.LedgerHead() != before+uint64(len(recs)) {
		t.Fatalf("ledger: %d entries, head %d, want %d more than %d: %v", n, s.LedgerHead(), len(recs), before, err)
	}
	if st, _ := s.Stats(); st.Count[Uploading] != len(recs) || st.Count[Spooled] != 0 {
		t.Fatalf("stats %v after %d leases", st.Count, len(recs))
	}
}

// At start every lease left by a crash goes back to the queue, found through the tally.
func TestReleaseAllAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	var recs []Recording
	for i := range 5 {
		recs = append(recs, commit(t, s, fmt.Sprintf("CAM-1_%d.mp4", i), t0.Add(time.Duration(i)*time.Minute), Patrol, ""))
	}
	for _, r := range recs[:3] {
		if _, err := s.Lease(r.ID, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Verify(recs[1].ID, recs[1].SHA256, recs[1].Size); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	n, err := s.ReleaseAll("restart")
	if err != nil || n != 2 {
		t.Fatalf("released %d (%v), want 2", n, err)
	}
	want := []string{recs[0].ID, recs[2].ID, recs[3].ID, recs[4].ID}
	if got := pendingIDs(t, s, 10); !slices.Equal(got, want) {
		t.Fatalf("pending %v, want %v", got, want)
	}
	if r, _ := s.Get(recs[1].ID); r.State != Verified {
		t.Fatalf("the verified recording is %s", r.State)
	}
	if n, err := s.ReleaseAll("again"); err != nil || n != 0 {
		t.Fatalf("second release: %d %v", n, err)
	}
}

// A record is no copy: a held id whose spool file is gone (a commit Badger applied while
// reporting an error, a card that lost the file) or no longer reads back with the
// recording's hash is never reported held, so the camera keeps its file.
func TestHeldRecordWithoutItsSpoolCopyIsNotHeld(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, path string)
	}{
		{"spool file gone", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"spool file altered", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("tampered"), 4096+100); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			defer s.Close()
			data := footage(200_000, 3)
			rec := Recording{ID: "CAM1_held.mp4", Name: "held.mp4", Device: "CAM1", Size: int64(len(data))}
			if _, _, err := s.Offload(context.Background(), rec, bytes.NewReader(data), Event{Kind: EvOffloaded}); err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, s.spool.path(rec.ID))
			_, held, err := s.Offload(context.Background(), rec, bytes.NewReader(data), Event{Kind: EvOffloaded})
			if err == nil || held {
				t.Fatalf("offload of a recording whose spool copy is spoiled: held %v, err %v: the camera's only copy could be deleted", held, err)
			}
		})
	}
}

// Badger can apply a commit and then report it failed (the sync after the write fails):
// the next commit must not reuse the ledger's sequence numbers, overwriting the entries
// of the commit that was applied after all.
func TestCommitReportedFailedButAppliedOverwritesNoEntry(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if err := s.Record(Event{Kind: EvInput, Detail: "one"}); err != nil {
		t.Fatal(err)
	}
	s.commit = func(txn *badger.Txn) error {
		if err := txn.Commit(); err != nil {
			return err
		}
		return errors.New("sync failed after the write")
	}
	if err := s.Record(Event{Kind: EvInput, Detail: "two, applied though reported failed"}); err == nil {
		t.Fatal("the failing commit reported no error")
	}
	s.commit = (*badger.Txn).Commit
	if err := s.Record(Event{Kind: EvInput, Detail: "three"}); err != nil {
		t.Fatal(err)
	}
	var details []string
	if err := s.Ledger(1, func(e Entry) error { details = append(details, e.Detail); return nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := s.VerifyLedger(); err != nil || n != 3 || !slices.Contains(details, "two, applied though reported failed") {
		t.Fatalf("ledger %q (%d entries, %v): an applied entry was overwritten", details, n, err)
	}
}
