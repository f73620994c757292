package camlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCamera answers the dock's requests on the far end of a pipe: answer returns the
// reply's payload (marshalled unless it is already a json.RawMessage), or ok=false to
// stay silent.
func fakeCamera(t *testing.T, answer func(req Frame) (payload any, ok bool)) *Link {
	t.Helper()
	dock, cam := net.Pipe()
	go func() {
		var dec Decoder
		buf := make([]byte, 4096)
		for {
			n, err := cam.Read(buf)
			if err != nil {
				return
			}
			dec.Write(buf[:n])
			for {
				req, ok := dec.Next()
				if !ok {
					break
				}
				p, ok := answer(req)
				if !ok {
					continue
				}
				raw, isRaw := p.(json.RawMessage)
				if !isRaw {
					if raw, err = json.Marshal(p); err != nil {
						t.Errorf("fake camera: %v", err)
						return
					}
				}
				out, err := AppendFrame(nil, Frame{Code: req.Code.Reply(), Seq: req.Seq, Payload: raw})
				if err != nil {
					t.Errorf("fake camera: %v", err)
					return
				}
				if _, err := cam.Write(out); err != nil {
					return
				}
			}
		}
	}()
	l := NewLink(dock, 200*time.Millisecond, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { l.Close(); cam.Close() })
	return l
}

// listOffset decodes a list request's offset.
func listOffset(t *testing.T, req Frame) int {
	var r ListRequest
	if err := json.Unmarshal(req.Payload, &r); err != nil {
		t.Errorf("list request %s: %v", req.Payload, err)
	}
	return r.Offset
}

// pager is a fake camera's list command: page answers the request for offset.
func pager(t *testing.T, page func(offset int) any) func(Frame) (any, bool) {
	return func(req Frame) (any, bool) {
		if req.Code != CodeList {
			t.Errorf("unexpected %s", req.Code)
			return nil, false
		}
		return page(listOffset(t, req)), true
	}
}

// entries makes n well-formed entries named prefix0000...
func entries(prefix string, from, n int) []FileEntry {
	out := make([]FileEntry, n)
	for i := range out {
		out[i] = FileEntry{Name: fmt.Sprintf("%s%04d.MP4", prefix, from+i), Size: int64(from + i)}
	}
	return out
}

// camera lists all, pageSize at a time, as an honest camera does.
func camera(all []FileEntry, pageSize int) func(int) any {
	return func(off int) any {
		p := ListPage{Total: len(all), Offset: &off}
		if off < len(all) {
			p.Recordings = all[off:min(off+pageSize, len(all))]
		}
		return p
	}
}

func names(fs []FileEntry) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

// A camera with DCF folders and one entry the dock cannot accept: the folders' recordings
// are listed, the bad entry alone is refused.
func TestListKeepsNestedNamesAndSkipsBadEntry(t *testing.T) {
	l := fakeCamera(t, func(req Frame) (any, bool) {
		return json.RawMessage(`{"total":3,"recordings":[
			{"name":"DCIM/100MEDIA/VID_0002.MP4","size":10},
			{"name":"../../etc/shadow","size":1},
			{"name":"RECORD/REC_0001.WAV","size":5}]}`), true
	})
	got, err := l.List(context.Background(), ListLimits{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if n := names(got.Files); !slices.Equal(n, []string{"DCIM/100MEDIA/VID_0002.MP4", "RECORD/REC_0001.WAV"}) {
		t.Fatalf("Files = %q", n)
	}
	if len(got.Refused) != 1 || got.Refused[0].Name != "../../etc/shadow" || !strings.Contains(got.Refused[0].Why, `".."`) {
		t.Fatalf("Refused = %+v", got.Refused)
	}
	if got.Truncated != "" {
		t.Fatalf("Truncated = %q", got.Truncated)
	}
}

// Every kind of bad entry is refused alone, with its reason, and the good ones around
// it are kept, across pages.
func TestListRefusesBadEntriesOneByOne(t *testing.T) {
	page1 := `{"total":14,"recordings":[
		{"name":"DCIM/100MEDIA/VID_0001.MP4","size":10,"mark":"dispute"},
		{"name":"NEG.MP4","size":-1},
		{"name":"HUGE.MP4","size":9000000000000000000},
		{"name":"BIG.MP4","size":1e30},
		{"name":"MARK.MP4","size":1,"mark":"lol"},
		{"name":5,"size":1},
		{"name":"STR.MP4","size":"12"},
		null]}`
	page2 := `{"total":14,"recordings":[
		{"name":"CTRL\u0001.MP4","size":1},
		{"name":"/abs.MP4","size":1},
		{"name":"DUP.MP4","size":1},
		{"name":"PHOTO/IMG_0001.JPG","size":3},
		{"name":"dup.mp4","size":2},
		{"name":"DCIM\\VID.MP4","size":1}]}`
	l := fakeCamera(t, pager(t, func(off int) any {
		if off == 0 {
			return json.RawMessage(page1)
		}
		return json.RawMessage(page2)
	}))
	got, err := l.List(context.Background(), ListLimits{MaxSize: 1 << 40})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if n := names(got.Files); !slices.Equal(n, []string{"DCIM/100MEDIA/VID_0001.MP4", "PHOTO/IMG_0001.JPG"}) || got.Files[0].Mark != "dispute" {
		t.Fatalf("Files = %+v", got.Files)
	}
	want := []Refused{
		{"NEG.MP4", "size -1"}, {"HUGE.MP4", "size 9000000000000000000"}, {"BIG.MP4", "undecodable"},
		{"MARK.MP4", "unknown mark"}, {"", "undecodable"}, {"STR.MP4", "undecodable"}, {"", "empty"},
		{"CTRL\x01.MP4", "control byte"}, {"/abs.MP4", "absolute"}, {"DUP.MP4", "more than once"},
		{"dup.mp4", "more than once"}, {"DCIM\\VID.MP4", "backslash"},
	}
	if len(got.Refused) != len(want) {
		t.Fatalf("%d refused, want %d: %+v", len(got.Refused), len(want), got.Refused)
	}
	for i, r := range got.Refused {
		if r.Name != want[i].Name || !strings.Contains(r.Why, want[i].Why) {
			t.Errorf("refused %q because %q, want %q because ...%s...", r.Name, r.Why, want[i].Name, want[i].Why)
		}
	}
}

// A camera that ignores the offset and answers its first page every time: every entry
// comes twice, so none is believed.
func TestListRefusesRepeatedPages(t *testing.T) {
	all := entries("VID_", 0, 100)
	l := fakeCamera(t, pager(t, func(int) any { return ListPage{Total: 100, Recordings: all[:50]} }))
	got, err := l.List(context.Background(), ListLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != 0 || len(got.Refused) != 100 {
		t.Fatalf("%d files, %d refused; want 0 and 100", len(got.Files), len(got.Refused))
	}
}

// Each bound of a listing, against a camera that would exceed it.
func TestListBounds(t *testing.T) {
	all := entries("VID_", 0, 250)
	tests := []struct {
		name  string
		lim   ListLimits
		page  func(off int) any
		delay time.Duration
		files int    // accepted, when no error
		trunc bool   // Listing.Truncated set
		err   string // in the error, when the listing fails
	}{
		{name: "honest, several pages", page: camera(all, 50), files: 250},
		{name: "empty", page: camera(nil, 50)},
		{name: "more entries than taken", lim: ListLimits{MaxEntries: 120}, page: camera(all, 50), files: 120, trunc: true},
		{name: "total grows a little", page: func(off int) any {
			if off == 0 {
				return ListPage{Total: 60, Recordings: all[:50]}
			}
			return ListPage{Total: 61, Recordings: all[50:61]}
		}, files: 61},
		{name: "too many pages", lim: ListLimits{MaxPages: 10}, page: camera(all, 1), err: "more than 10 pages"},
		{name: "too many bytes", lim: ListLimits{MaxBytes: 4000}, page: camera(all, 50), err: "replies over 4000 bytes"},
		{name: "total goes back", page: func(off int) any {
			if off == 0 {
				return ListPage{Total: 100, Recordings: all[:50]}
			}
			return ListPage{Total: 60, Recordings: all[50:60]}
		}, err: "total went back from 100 to 60"},
		{name: "page past the total", page: func(int) any { return ListPage{Total: 10, Recordings: all[:20]} }, err: "past the total 10"},
		{name: "page makes no progress", page: func(off int) any {
			if off == 0 {
				return ListPage{Total: 100, Recordings: all[:50]}
			}
			return ListPage{Total: 100}
		}, err: "empty page at offset 50 of 100"},
		{name: "offset answered goes back", page: func(int) any {
			zero := 0
			return ListPage{Total: 100, Offset: &zero, Recordings: all[:50]}
		}, err: "asked for offset 50, answered offset 0"},
		{name: "negative total", page: func(int) any { return json.RawMessage(`{"total":-1}`) }, err: "negative total"},
		{name: "never ends", lim: ListLimits{Deadline: 400 * time.Millisecond}, delay: 5 * time.Millisecond, page: func(off int) any {
			return ListPage{Total: off + 2, Recordings: entries("VID_", off, 1)}
		}, err: "not finished within 400ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := fakeCamera(t, pager(t, func(off int) any {
				time.Sleep(tc.delay)
				return tc.page(off)
			}))
			got, err := l.List(context.Background(), tc.lim)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("List = %d files, err %v; want an error with %q", len(got.Files), err, tc.err)
				}
				if tc.err != "negative total" && !errors.Is(err, ErrBadListing) {
					t.Fatalf("err %v is not ErrBadListing", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Files) != tc.files || (got.Truncated != "") != tc.trunc || len(got.Refused) != 0 {
				t.Fatalf("%d files, %d refused, truncated %q; want %d files, truncated %v", len(got.Files), len(got.Refused), got.Truncated, tc.files, tc.trunc)
			}
		})
	}
}

// The dock's own cancellation is not blamed on the camera.
func TestListCancelledIsNotABadListing(t *testing.T) {
	l := fakeCamera(t, func(Frame) (any, bool) { return nil, false })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := l.List(ctx, ListLimits{})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrBadListing) {
		t.Fatalf("List = %v", err)
	}
}

// The dock never asks a camera to delete a name it could not have listed.
func TestDeleteRefusesBadName(t *testing.T) {
	asked := make(chan string, 1)
	l := fakeCamera(t, func(req Frame) (any, bool) {
		asked <- string(req.Payload)
		return Empty{}, true
	})
	if err := l.Delete(context.Background(), "../camera.json", 1); !errors.Is(err, ErrBadName) {
		t.Fatalf("Delete(../camera.json) = %v", err)
	}
	if err := l.Delete(context.Background(), "DCIM/100MEDIA/VID_0001.MP4", 1); err != nil {
		t.Fatal(err)
	}
	if got := <-asked; !strings.Contains(got, "DCIM/100MEDIA/VID_0001.MP4") {
		t.Fatalf("camera asked %s", got)
	}
	select {
	case got := <-asked:
		t.Fatalf("camera asked again: %s", got)
	default:
	}
}

// Whatever pages a camera sends, the listing holds only checked, distinct entries within
// its bounds, and ends.
func FuzzListing(f *testing.F) {
	f.Add(`{"total":2,"recordings":[{"name":"DCIM/A.MP4","size":1},{"name":"a.mp4","size":2}]}` + "\n" + `{"total":3,"recordings":[{"name":"dcim/a.mp4","size":1}]}`)
	f.Add(`{"total":1,"recordings":[{"name":"../x","size":1}]}`)
	f.Add(`{"total":5,"offset":0,"recordings":[null,{"name":5},{"name":"x","size":-1},{"name":"y","size":1,"mark":"dispute"}]}`)
	f.Fuzz(func(t *testing.T, pages string) {
		lim := ListLimits{MaxEntries: 6, MaxPages: 4, MaxBytes: 2000, MaxSize: 1 << 20}
		ls := newLister(lim)
		var res Listing
		for _, payload := range strings.Split(pages, "\n") {
			var p listReply
			if err := Decode([]byte(payload), &p); err != nil {
				return
			}
			done, err := ls.add(&p)
			if err != nil {
				return
			}
			if done {
				res = ls.listing()
				break
			}
		}
		if ls.pages > lim.MaxPages || ls.offset > lim.MaxEntries || ls.bytes > lim.MaxBytes {
			t.Fatalf("bounds passed: %d pages, %d entries, %d bytes", ls.pages, ls.offset, ls.bytes)
		}
		if res.Files != nil || res.Refused != nil {
			if len(res.Files)+len(res.Refused) != ls.offset {
				t.Fatalf("%d entries taken, %d accepted + %d refused", ls.offset, len(res.Files), len(res.Refused))
			}
		}
		seen := map[string]bool{}
		for _, e := range res.Files {
			if err := CheckEntry(e, lim.MaxSize); err != nil {
				t.Fatalf("accepted %+v: %v", e, err)
			}
			if k := strings.ToUpper(e.Name); seen[k] {
				t.Fatalf("accepted %q twice", e.Name)
			} else {
				seen[k] = true
			}
		}
		for _, r := range res.Refused {
			if seen[strings.ToUpper(r.Name)] && r.Name != "" {
				t.Fatalf("%q both accepted and refused", r.Name)
			}
		}
	})
}

// A card frees a large file slowly, or the answer to a delete is lost: the dock waits
// longer for a larger file, and an unanswered delete is checked against the camera's
// listing before it is tried again (a second try would be refused for a file already
// gone) or reported as failed.
func TestDeleteOfALargeFileWaitsAndChecks(t *testing.T) {
	const big = 3 << 30
	tests := []struct {
		name    string
		replyIn time.Duration // how long the camera takes to answer a delete; <0: never
		deletes bool          // whether the file is gone after the first request
		ok      bool
	}{
		{"slow card, answer within the size's allowance", 1500 * time.Millisecond, true, true},
		{"answer lost, file gone", -1, true, true},
		{"answer lost, file still there", -1, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := []FileEntry{{Name: "DCIM/100MEDIA/BIG.MP4", Size: big}, {Name: "DCIM/100MEDIA/SMALL.MP4", Size: 10}}
			requests := 0
			l := fakeCamera(t, func(req Frame) (any, bool) {
				switch req.Code {
				case CodeDelete:
					requests++
					if requests > 1 {
						return json.RawMessage(nil), false
					}
					if tc.deletes {
						files = files[1:]
					}
					if tc.replyIn < 0 {
						return nil, false
					}
					time.Sleep(tc.replyIn)
					return Empty{}, true
				case CodeList:
					off := listOffset(t, req)
					return camera(files, 50)(off), true
				}
				return nil, false
			})
			err := l.Delete(context.Background(), "DCIM/100MEDIA/BIG.MP4", big)
			if (err == nil) != tc.ok {
				t.Fatalf("delete = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if d := DeleteTimeout(time.Second, 8<<30); d != 9*time.Second {
		t.Errorf("DeleteTimeout(1s, 8 GiB) = %s, want 9s", d)
	}
}
