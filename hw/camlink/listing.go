package camlink

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrBadListing means the camera's listing as a whole cannot be believed: it went back on
// itself, stopped short, or never ended. Entries that fail alone are Refused instead.
var ErrBadListing = errors.New("camera listing refused")

// Listing is what a camera holds, as the dock accepts it: Files passed every check and may
// be copied; Refused did not and stay on the camera.
type Listing struct {
	Files   []FileEntry
	Refused []Refused
	// Truncated is empty when the listing was read to its end; otherwise it says why the
	// dock stopped (more entries than it takes in one docking): Files and Refused hold
	// what came before, and the rest stay on the camera for the next docking.
	Truncated string
}

// Refused is a listed entry the dock will not copy. Name is the camera's string as it
// came (possibly not UTF-8, with control bytes; cut to maxRefusedName bytes): quote it
// (%q) before showing it. Why says what check it failed.
type Refused struct {
	Name string
	Why  string
}

// ListLimits bound one listing, against a camera that would exhaust the dock's memory or
// keep the bay busy forever. A zero field takes its DefaultListLimits value.
type ListLimits struct {
	// MaxEntries is how many entries (accepted and refused) one listing takes; a camera
	// that lists more has the rest left for the next docking (Listing.Truncated).
	MaxEntries int
	// MaxPages is how many list pages one listing may take; more is ErrBadListing.
	MaxPages int
	// MaxBytes is how many payload bytes of list replies one listing may take; more is
	// ErrBadListing.
	MaxBytes int
	// MaxSize is the largest recording size believed; an entry over it is refused.
	MaxSize int64
	// Deadline bounds the whole listing; a listing not finished by then is ErrBadListing.
	Deadline time.Duration
}

// DefaultListLimits are sized for a 512 MB board: a listing holds at most about 40 MB.
// 100,000 entries is some 1,500 hours of 1-minute clips; a SDXC card holds at most 2 TiB;
// at 115200 baud a page of 50 entries takes about 0.7 s, so 10 minutes lists some 40,000.
var DefaultListLimits = ListLimits{
	MaxEntries: 100_000,
	MaxPages:   10_000,
	MaxBytes:   32 << 20,
	MaxSize:    2 << 40,
	Deadline:   10 * time.Minute,
}

func (lim ListLimits) withDefaults() ListLimits {
	d := DefaultListLimits
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = d.MaxEntries
	}
	if lim.MaxPages <= 0 {
		lim.MaxPages = d.MaxPages
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = d.MaxBytes
	}
	if lim.MaxSize <= 0 {
		lim.MaxSize = d.MaxSize
	}
	if lim.Deadline <= 0 {
		lim.Deadline = d.Deadline
	}
	return lim
}

// maxRefusedName is how much of a refused entry's name is kept for the report.
const maxRefusedName = 512

// CheckEntry reports why a listed entry cannot be copied, or nil: its name (CheckName),
// its size (0 to maxSize) and its mark (ValidMark).
func CheckEntry(e FileEntry, maxSize int64) error {
	if err := CheckName(e.Name); err != nil {
		return err
	}
	if e.Size < 0 || e.Size > maxSize {
		return fmt.Errorf("size %d out of range 0-%d", e.Size, maxSize)
	}
	if !ValidMark(e.Mark) {
		return fmt.Errorf("unknown mark %q", e.Mark)
	}
	return nil
}

// listReply is a list page as the dock reads it: each entry is decoded on its own, so one
// the dock cannot parse is refused alone.
type listReply struct {
	Total      int64             `json:"total"`
	Offset     *int64            `json:"offset"`
	Recordings []json.RawMessage `json:"recordings"`
	size       int               // payload bytes
}

func (r *listReply) UnmarshalJSON(b []byte) error {
	type plain listReply
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = listReply(p)
	r.size = len(b)
	return nil
}

// Check rejects a page no listing can hold.
func (r *listReply) Check() error {
	if r.Total < 0 {
		return fmt.Errorf("negative total %d", r.Total)
	}
	return nil
}

// lister accumulates a listing page by page and checks it against its limits. It does no
// I/O, so every bound is a unit test and the whole of it is fuzzed.
type lister struct {
	lim     ListLimits
	out     Listing
	offset  int            // entries taken so far: the next page's offset
	total   int64          // the last page's total
	pages   int            // pages taken
	bytes   int            // payload bytes taken
	seen    map[string]int // upper-cased name -> index in out.Files, or -1 once refused
	dropped []bool         // out.Files[i] was refused as a duplicate
}

func newLister(lim ListLimits) *lister {
	return &lister{lim: lim.withDefaults(), seen: map[string]int{}}
}

// add takes the page answered for offset l.offset. done is true when the listing is
// complete (or truncated at MaxEntries); an error refuses the whole listing.
func (l *lister) add(p *listReply) (done bool, err error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadListing, fmt.Sprintf(format, a...))
	}
	l.pages++
	l.bytes += p.size
	switch {
	case l.pages > l.lim.MaxPages:
		return false, bad("more than %d pages (%d entries of %d taken)", l.lim.MaxPages, l.offset, p.Total)
	case l.bytes > l.lim.MaxBytes:
		return false, bad("replies over %d bytes after %d entries", l.lim.MaxBytes, l.offset)
	case p.Offset != nil && *p.Offset != int64(l.offset):
		return false, bad("asked for offset %d, answered offset %d", l.offset, *p.Offset)
	case l.pages > 1 && p.Total < l.total:
		return false, bad("total went back from %d to %d at offset %d", l.total, p.Total, l.offset)
	case int64(len(p.Recordings)) > p.Total-int64(l.offset):
		return false, bad("page at offset %d brings %d entries, past the total %d", l.offset, len(p.Recordings), p.Total)
	case len(p.Recordings) == 0 && int64(l.offset) < p.Total:
		return false, bad("empty page at offset %d of %d: the listing stops short", l.offset, p.Total)
	}
	l.total = p.Total
	for _, raw := range p.Recordings {
		if l.offset == l.lim.MaxEntries {
			break
		}
		l.offset++
		l.take(raw)
	}
	if int64(l.offset) < p.Total && l.offset == l.lim.MaxEntries {
		l.out.Truncated = fmt.Sprintf("the camera lists %d recordings; the dock takes %d in one docking and leaves the rest on the camera", p.Total, l.lim.MaxEntries)
		return true, nil
	}
	return int64(l.offset) >= p.Total, nil
}

// take checks one entry and files it as accepted or refused. A name listed twice (FAT
// and exFAT fold case, so VID.MP4 and vid.mp4 are one file) is refused every time it
// appears, the first one included: which of the two describes the file is unknowable.
func (l *lister) take(raw json.RawMessage) {
	var e FileEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		l.refuse(rawName(raw), fmt.Sprintf("undecodable entry: %v", err))
		return
	}
	if err := CheckEntry(e, l.lim.MaxSize); err != nil {
		l.refuse(e.Name, err.Error())
		return
	}
	key := strings.ToUpper(e.Name)
	if i, dup := l.seen[key]; dup {
		if i >= 0 {
			l.dropped[i] = true
			l.seen[key] = -1
			l.refuse(l.out.Files[i].Name, dupWhy)
		}
		l.refuse(e.Name, dupWhy)
		return
	}
	l.seen[key] = len(l.out.Files)
	l.out.Files = append(l.out.Files, e)
	l.dropped = append(l.dropped, false)
}

const dupWhy = "name listed more than once (names that differ only in case are one file on FAT)"

// listing is the result: the accepted entries without those refused later as duplicates.
func (l *lister) listing() Listing {
	out := l.out
	out.Files = out.Files[:0:0]
	for i, e := range l.out.Files {
		if !l.dropped[i] {
			out.Files = append(out.Files, e)
		}
	}
	return out
}

func (l *lister) refuse(name, why string) {
	if len(name) > maxRefusedName {
		name = name[:maxRefusedName]
	}
	l.out.Refused = append(l.out.Refused, Refused{Name: name, Why: why})
}

// rawName is the name of an entry that did not decode, when there is one to tell.
func rawName(raw json.RawMessage) string {
	var e struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(raw, &e) == nil {
		return e.Name
	}
	return ""
}
