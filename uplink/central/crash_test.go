package central

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dock/uplink/wire"
)

// crash is the panic crashPoint raises to stop the store where a crash would.
type crash struct{ step string }

// runUntilCrash runs f and stops it at the n-th crash point it reaches, leaving the files
// as a crash there would (open files are closed, as a dead process's are). It returns the
// step, or "" when f finished before reaching it.
func runUntilCrash(n int, f func()) (step string) {
	count := 0
	crashPoint = func(s string) {
		if count++; count == n {
			panic(crash{s})
		}
	}
	defer func() {
		crashPoint = nil
		if r := recover(); r != nil {
			c, ok := r.(crash)
			if !ok {
				panic(r)
			}
			step = c.step
		}
	}()
	f()
	return ""
}

// crashAtStep runs f and stops it at the first crash point named step.
func crashAtStep(step string, f func()) bool {
	crashPoint = func(s string) {
		if s == step {
			panic(crash{s})
		}
	}
	defer func() {
		crashPoint = nil
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
		}
	}()
	f()
	return false
}

// recording is one camera file as the dock announces and sends it.
type recording struct {
	meta  wire.RecordingMeta
	data  []byte
	sum   string
	chunk int
	order []int64 // chunk offsets in the order sent
}

func newRecording(id string, size, chunk int, seed uint64, shuffle bool) recording {
	data, sum := footage(size, seed)
	r := recording{meta: wire.RecordingMeta{ID: id, Device: strings.SplitN(id, "_", 2)[0]}, data: data, sum: sum, chunk: chunk}
	for o := 0; o < size; o += chunk {
		r.order = append(r.order, int64(o))
	}
	if shuffle {
		rand.New(rand.NewPCG(seed, 1)).Shuffle(len(r.order), func(i, j int) { r.order[i], r.order[j] = r.order[j], r.order[i] })
	}
	return r
}

func (r recording) begin() wire.BeginMsg {
	return wire.BeginMsg{Transfer: "t1", Recording: r.meta, Size: int64(len(r.data)), SHA256: r.sum}
}

func (r recording) end() wire.EndMsg {
	return wire.EndMsg{Transfer: "t1", Recording: r.meta.ID, Size: int64(len(r.data)), SHA256: r.sum}
}

// send drives one transfer as the dock's sender does, through central's answers: begin,
// the chunks past central's offset, end; a transfer that fails is tried again from begin,
// as the dock does after its backoff. It returns central's receipt.
func send(st Storage, dock string, r recording) (wire.ReceiptMsg, error) {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		a, err := answerBegin(st, testLimits, dock, r.begin())
		if err != nil {
			return wire.ReceiptMsg{}, fmt.Errorf("begin: %w", err)
		}
		if a.receipt != nil {
			return *a.receipt, nil
		}
		if a.ack.Error != "" {
			return wire.ReceiptMsg{}, fmt.Errorf("begin answered %q", a.ack.Error)
		}
		held := a.ack.Offset
		for _, off := range r.order {
			end := min(off+int64(r.chunk), int64(len(r.data)))
			if end <= held {
				continue
			}
			c := answerChunk(st, testLimits, dock, wire.Chunk{Recording: r.meta.ID, Offset: off, Data: r.data[off:end]})
			if c.ack.Error != "" {
				return wire.ReceiptMsg{}, fmt.Errorf("chunk at %d answered %q", off, c.ack.Error)
			}
		}
		e, _, err := answerEnd(st, dock, r.end())
		if err != nil && e.receipt == nil {
			return wire.ReceiptMsg{}, fmt.Errorf("end: %w", err)
		}
		if e.receipt != nil {
			return *e.receipt, nil
		}
		last = fmt.Errorf("end answered %+v", *e.ack)
	}
	return wire.ReceiptMsg{}, last
}

// checkFiled asserts that central holds r once, as sent, under receipt rc, answers a
// repeated end and begin with that same receipt, and left nothing of the upload behind.
func checkFiled(t *testing.T, dir, dock string, r recording, rc wire.ReceiptMsg) {
	t.Helper()
	st := FileStore{Dir: dir}
	if rc.Error != "" || rc.SHA256 != r.sum || rc.Size != int64(len(r.data)) {
		t.Fatalf("receipt %+v, want %d bytes sha256 %.12s", rc, len(r.data), r.sum)
	}
	s, ok, err := st.Filed(dock, r.meta.ID)
	if err != nil || !ok {
		t.Fatalf("not filed after its receipt: %v", err)
	}
	if b, err := os.ReadFile(s.Path); err != nil || !bytes.Equal(b, r.data) {
		t.Fatalf("filed file %s: %d bytes (%v), want the %d sent", s.Path, len(b), err, len(r.data))
	}
	e, _, err := answerEnd(st, dock, r.end())
	if err != nil || e.receipt == nil || !sameReceipt(*e.receipt, rc) {
		t.Fatalf("repeated end answered %+v %+v (%v), want the same receipt %+v", e.ack, e.receipt, err, rc)
	}
	b, err := answerBegin(st, testLimits, dock, r.begin())
	if err != nil || b.receipt == nil || !sameReceipt(*b.receipt, rc) {
		t.Fatalf("repeated begin answered %+v %+v (%v), want the same receipt %+v", b.ack, b.receipt, err, rc)
	}
	if list, err := st.List(); err != nil || len(list) != 1 {
		t.Fatalf("List: %d recordings (%v), want 1", len(list), err)
	}
	var footageFiles, leftovers []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		switch {
		case err != nil || d.IsDir():
		case strings.HasPrefix(rel, "incoming"+string(filepath.Separator)) || strings.HasSuffix(p, ".tmp"):
			leftovers = append(leftovers, rel)
		case strings.HasPrefix(rel, "recordings"+string(filepath.Separator)) && filepath.Ext(p) == ".mp4":
			footageFiles = append(footageFiles, rel)
		}
		return nil
	})
	if len(footageFiles) != 1 || len(leftovers) != 0 {
		t.Fatalf("footage files %v (want one), left behind %v (want none)", footageFiles, leftovers)
	}
}

func sameReceipt(a, b wire.ReceiptMsg) bool {
	return a.Recording == b.Recording && a.Size == b.Size && a.SHA256 == b.SHA256 && a.Stored.Equal(b.Stored) && a.Error == b.Error
}

// Central crashes (kill -9) at any step of an upload, the filing of the recording included,
// and a fresh receiver over the same directory carries on: the dock's repeated end, or its
// transfer begun again, gets the receipt of the bytes it sent, filed once, from whatever
// point the crash left the files at; and a repeated end gets the same receipt again.
func TestFinishSurvivesACrashAtEveryStep(t *testing.T) {
	const dock = "dock-1"
	r := newRecording("CAM-5_VID_0005.mp4", 48<<10+100, 8<<10, 5, true)
	for _, recovery := range []string{"end again", "begin again"} {
		for n := 1; ; n++ {
			dir := t.TempDir()
			var first error
			step := runUntilCrash(n, func() { _, first = send(FileStore{Dir: dir}, dock, r) })
			if step == "" {
				if first != nil || n == 1 {
					t.Fatalf("upload without a crash: %v (crash points reached: %d)", first, n-1)
				}
				break
			}
			t.Run(fmt.Sprintf("%s after crash %d at %s", recovery, n, step), func(t *testing.T) {
				st := FileStore{Dir: dir} // a fresh receiver
				var rc wire.ReceiptMsg
				var err error
				if recovery == "end again" {
					e, _, ferr := answerEnd(st, dock, r.end())
					switch {
					case ferr != nil && e.receipt == nil:
						t.Fatalf("end after the crash: %v", ferr)
					case e.receipt != nil:
						rc = *e.receipt
					case e.ack.Error == "incomplete": // crashed before the last byte: the dock goes on
						rc, err = send(st, dock, r)
					default:
						t.Fatalf("end after the crash answered %+v", *e.ack)
					}
				} else {
					rc, err = send(st, dock, r)
				}
				if err != nil {
					t.Fatalf("after the crash: %v", err)
				}
				checkFiled(t, dir, dock, r, rc)
			})
		}
	}
}

// An upload's state file torn by a crash or a power cut (cut short, zeroed, garbled in
// either of its slots, with a longer state's tail after it) does not stall the recording:
// the dock's next begin gets an offset, and the upload completes with the right receipt.
func TestTornUploadStateDoesNotStall(t *testing.T) {
	const dock = "dock-1"
	r := newRecording("CAM-6_VID_0006.mp4", 40<<10, 4<<10, 6, true)
	tests := []struct {
		name string
		tear func(state []byte) (newState, beside []byte)
	}{
		{"cut in half", func(b []byte) ([]byte, []byte) { return b[:len(b)/2], nil }},
		{"empty", func(b []byte) ([]byte, []byte) { return nil, nil }},
		{"zeroed", func(b []byte) ([]byte, []byte) { return make([]byte, len(b)), nil }},
		{"a longer state's tail after it", func(b []byte) ([]byte, []byte) {
			return append(append([]byte(nil), b...), `,[40960,40961]]}`...), nil
		}},
		{"first slot garbled", func(b []byte) ([]byte, []byte) {
			b = append([]byte(nil), b...)
			copy(b[10:], bytes.Repeat([]byte{0xff}, 40))
			return b, nil
		}},
		{"second slot garbled", func(b []byte) ([]byte, []byte) {
			b = append([]byte(nil), b...)
			if len(b) > slotSize+70 {
				copy(b[slotSize+30:], bytes.Repeat([]byte{'7'}, 40))
			}
			return b, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := FileStore{Dir: dir}
			if _, err := st.Begin(dock, "t1", r.meta, int64(len(r.data)), r.sum); err != nil {
				t.Fatal(err)
			}
			for _, off := range r.order[:len(r.order)/2] {
				if _, err := st.Write(dock, r.meta.ID, off, r.data[off:min(off+int64(r.chunk), int64(len(r.data)))]); err != nil {
					t.Fatal(err)
				}
			}
			path := st.statePath(dock, r.meta.ID)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			torn, beside := tt.tear(b)
			if err := os.WriteFile(path, torn, 0o600); err != nil {
				t.Fatal(err)
			}
			if beside != nil {
				if err := os.WriteFile(tmpPath(path), beside, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			rc, err := send(FileStore{Dir: dir}, dock, r)
			if err != nil {
				t.Fatalf("upload after its state was torn: %v", err)
			}
			checkFiled(t, dir, dock, r, rc)
		})
	}
}

// A power cut can keep an upload's state while losing part of the bytes it counts as held
// (the part is not synced chunk by chunk). Central never receipts a hash that the filed
// bytes do not have: it finds the loss at the end, asks the dock for the bytes again, and
// files what the dock sent.
func TestFinishFilesOnlyWhatIsOnDisk(t *testing.T) {
	const dock = "dock-1"
	r := newRecording("CAM-7_VID_0007.mp4", 64<<10, 8<<10, 7, false)
	tests := []struct {
		name string
		lose func(part string) error
	}{
		{"zeros in the middle", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(make([]byte, 4096), 40<<10)
			return err
		}},
		{"cut short", func(p string) error { return os.Truncate(p, 20<<10) }},
		{"gone", os.Remove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := FileStore{Dir: dir}
			if _, err := st.Begin(dock, "t1", r.meta, int64(len(r.data)), r.sum); err != nil {
				t.Fatal(err)
			}
			for _, off := range r.order {
				if _, err := st.Write(dock, r.meta.ID, off, r.data[off:min(off+int64(r.chunk), int64(len(r.data)))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := tt.lose(st.partPath(dock, r.meta.ID)); err != nil {
				t.Fatal(err)
			}
			st = FileStore{Dir: dir} // the receiver after the power cut
			e, s, err := answerEnd(st, dock, r.end())
			if e.receipt != nil && e.receipt.Error == "" {
				b, rerr := os.ReadFile(s.Path)
				h := sha256.Sum256(b)
				if rerr != nil || hex.EncodeToString(h[:]) != e.receipt.SHA256 {
					t.Fatalf("receipt sha256 %.12s for a filed file whose bytes hash %.12s (%v)", e.receipt.SHA256, hex.EncodeToString(h[:]), rerr)
				}
			}
			if e.receipt == nil && (e.ack == nil || e.ack.Error == "") {
				t.Fatalf("end after the power cut: no answer (%v)", err)
			}
			rc, err := send(st, dock, r)
			if err != nil {
				t.Fatalf("upload after the power cut: %v", err)
			}
			checkFiled(t, dir, dock, r, rc)
		})
	}
}

// What central filed is never replaced: not by other bytes announced for the same dock and
// recording afterwards, not by other bytes sent while a crash had left its filing half
// done, and a file already at the filing path is never overwritten.
func TestFiledRecordingIsNeverReplaced(t *testing.T) {
	const dock = "dock-1"
	first := newRecording("CAM-8_VID_0008.mp4", 24<<10, 8<<10, 8, false)
	other := newRecording("CAM-8_VID_0008.mp4", 24<<10, 8<<10, 9, false)
	tests := []struct {
		name string
		// before runs against the store before other is sent; it reports whether first is
		// to be found filed at the end.
		before func(t *testing.T, st FileStore) (firstFiled bool)
	}{
		{"after the filing", func(t *testing.T, st FileStore) bool {
			rc, err := send(st, dock, first)
			if err != nil || rc.SHA256 != first.sum {
				t.Fatalf("first upload: %+v %v", rc, err)
			}
			return true
		}},
		{"after a crash mid-filing", func(t *testing.T, st FileStore) bool {
			crashAtStep("footage in place", func() { _, _ = send(st, dock, first) })
			if _, err := os.Stat(st.filedPath(dock, first.meta)); err != nil {
				t.Fatalf("the crash left no footage in place: %v", err)
			}
			return true
		}},
		{"a file already at the filing path", func(t *testing.T, st FileStore) bool {
			path := st.filedPath(dock, other.meta)
			if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, first.data, 0o440); err != nil {
				t.Fatal(err)
			}
			return false
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := FileStore{Dir: dir}
			firstFiled := tt.before(t, st)
			st = FileStore{Dir: dir}
			rc, err := send(st, dock, other)
			if err == nil && rc.Error == "" && rc.SHA256 == other.sum {
				t.Fatalf("other bytes filed over the first: receipt %+v", rc)
			}
			// Straight at the store too: a begin and an end of the other bytes are refused.
			if firstFiled {
				if err != nil || rc.Error == "" || rc.SHA256 != first.sum {
					t.Fatalf("other bytes answered %+v (%v), want a refusal carrying the filed hash %.12s", rc, err, first.sum)
				}
				if up, err := st.Begin(dock, "t9", other.meta, int64(len(other.data)), other.sum); err == nil {
					t.Fatalf("begin of other bytes for a filed recording accepted: %+v", up)
				}
				if s, err := st.Finish(dock, other.meta.ID, int64(len(other.data)), other.sum); err == nil {
					t.Fatalf("end of other bytes for a filed recording answered %+v, want an error", s)
				}
				s, ok, err := st.Filed(dock, first.meta.ID)
				if err != nil || !ok || s.SHA256 != first.sum {
					t.Fatalf("Filed: %+v %v %v, want the first bytes", s, ok, err)
				}
			}
			if b, err := os.ReadFile(st.filedPath(dock, first.meta)); err != nil || !bytes.Equal(b, first.data) {
				t.Fatalf("the file at the filing path changed: %d bytes (%v)", len(b), err)
			}
		})
	}
}

// A power cut after the part was synced at a checkpoint, but while later chunks were only
// in the page cache: after the reboot central counts as held only what was synced, the dock
// sends the rest again from there, and central files exactly the bytes sent; progress up to
// the checkpoint is kept.
func TestPowerCutResumesFromTheLastSync(t *testing.T) {
	const dock = "dock-1"
	defer func(step int64, boot string) { durableStep, bootID = step, boot }(durableStep, bootID)
	durableStep = 16 << 10
	r := newRecording("CAM-4_VID_0004.mp4", 96<<10, 8<<10, 4, false)
	dir := t.TempDir()
	st := FileStore{Dir: dir}
	if _, err := st.Begin(dock, "t1", r.meta, int64(len(r.data)), r.sum); err != nil {
		t.Fatal(err)
	}
	for _, off := range r.order[:5] { // 40 KiB: synced at 32 KiB
		if _, err := st.Write(dock, r.meta.ID, off, r.data[off:off+int64(r.chunk)]); err != nil {
			t.Fatal(err)
		}
	}
	// The power cut loses the chunk past the sync; the machine boots again.
	part, err := os.OpenFile(st.partPath(dock, r.meta.ID), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.WriteAt(make([]byte, 8<<10), 32<<10); err != nil {
		t.Fatal(err)
	}
	part.Close()
	bootID = "the boot after the power cut"

	st = FileStore{Dir: dir}
	a, err := answerBegin(st, testLimits, dock, r.begin())
	if err != nil || a.ack == nil || a.ack.Offset != 32<<10 {
		t.Fatalf("begin after the power cut answered %+v %+v (%v), want an ack at the sync point %d", a.ack, a.receipt, err, 32<<10)
	}
	rc, err := send(st, dock, r)
	if err != nil {
		t.Fatal(err)
	}
	checkFiled(t, dir, dock, r, rc)
}

// Chunks scattered past the contiguous offset (a dock or a broker gone wrong) do not grow
// the state written for each chunk without bound: past maxAhead ranges a chunk that opens
// one more is not stored, and the upload still completes when the dock sends it again.
func TestScatteredChunksKeepTheStateBounded(t *testing.T) {
	const dock = "dock-1"
	// 1024 chunks, every other one sent first: 512 ranges apart, where a dock keeps at most
	// wire.MaxWindow chunks unacknowledged.
	const bound = 4 * wire.MaxWindow
	r := newRecording("CAM-3_VID_0033.mp4", 1024*(4<<10), 4<<10, 33, false)
	st := FileStore{Dir: t.TempDir()}
	if _, err := st.Begin(dock, "t1", r.meta, int64(len(r.data)), r.sum); err != nil {
		t.Fatal(err)
	}
	var biggest, ahead int
	for i := len(r.order) - 1; i > 0; i -= 2 { // every other chunk, from the end: all apart
		off := r.order[i]
		if _, err := st.Write(dock, r.meta.ID, off, r.data[off:off+int64(r.chunk)]); err != nil {
			t.Fatal(err)
		}
		u, err := st.lock(dock, r.meta.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(u.st)
		biggest, ahead = max(biggest, len(b)), len(u.st.Ahead)
		u.close()
	}
	if ahead > bound || biggest > 16<<10 {
		t.Fatalf("%d ranges ahead, a state of up to %d bytes saved for each chunk: want at most %d ranges", ahead, biggest, bound)
	}
	rc, err := send(st, dock, r)
	if err != nil {
		t.Fatal(err)
	}
	checkFiled(t, st.Dir, dock, r, rc)
}
