package crashtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"dock/queue"
	"dock/uplink/central"
)

// census is where every copy of every file is at one moment: on the cameras (read from
// their storage), in the dock's queue and spool (read with the agent dead), at central
// (its stored metadata, each stored file hashed again).
type census struct {
	central    []centralCopy
	centralErr error
	stray      []string // footage files under central's recordings/ that no stored entry names

	dockRead bool // the dock was inspected (the agent was dead)
	dock     []dockCopy
	dockErr  error
	ledger   error

	camera map[string]map[string]string // serial -> file name -> sha256 of its bytes now
}

type centralCopy struct {
	central.Stored
	Hash string // of the stored file, now
	Err  error
}

type dockCopy struct {
	queue.Recording
	Hash string // of the spool copy, read back now ("" once freed)
	Err  error
}

// takeCensus reads the three places. The dock's queue is opened only when inspectDock (the
// agent process must be dead); central's store may be live, its entries only grow.
func (sc *scenario) takeCensus(storeDir, dockDir, keyFile string, inspectDock bool) *census {
	c := &census{camera: map[string]map[string]string{}}
	for _, cam := range sc.Cams {
		files := map[string]string{}
		err := filepath.WalkDir(cam.footage(), func(p string, d os.DirEntry, err error) error {
			if errors.Is(err, os.ErrNotExist) {
				return nil // deleted by the dock as we looked
			}
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(cam.footage(), p)
			if err != nil {
				return err
			}
			sum, err := hashPath(p)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				sum = "error: " + err.Error()
			}
			files[filepath.ToSlash(rel)] = sum
			return nil
		})
		if err != nil {
			files["<unreadable footage>"] = err.Error()
		}
		c.camera[cam.Serial] = files
	}

	store := central.FileStore{Dir: storeDir}
	stored, err := store.List()
	c.centralErr = err
	named := map[string]bool{}
	for _, s := range stored {
		cc := centralCopy{Stored: s}
		cc.Hash, cc.Err = hashPath(s.Path)
		c.central = append(c.central, cc)
		named[filepath.Clean(s.Path)] = true
	}
	_ = filepath.WalkDir(filepath.Join(storeDir, "recordings"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".sha256") && !strings.HasSuffix(p, ".tmp") && !named[filepath.Clean(p)] {
			c.stray = append(c.stray, p)
		}
		return nil
	})

	if !inspectDock {
		return c
	}
	c.dockRead = true
	q, err := queue.Open(dockDir, quiet())
	if err != nil {
		c.dockErr = fmt.Errorf("reopen the dock's queue: %w", err)
		return c
	}
	defer q.Close()
	key, err := queue.LoadKey(keyFile)
	if err != nil {
		c.dockErr = err
		return c
	}
	q.Encrypt(key)
	if _, err := q.VerifyLedger(); err != nil {
		c.ledger = err
	}
	c.dockErr = q.Each(func(r queue.Recording) error {
		d := dockCopy{Recording: r}
		if r.State != queue.Freed {
			d.Hash, d.Err = spoolHash(q, r.ID, r.Size)
		}
		c.dock = append(c.dock, d)
		return nil
	})
	return c
}

// hashPath hashes a regular file (sha256, hex).
func hashPath(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() {
		return "", errors.New("not a regular file")
	}
	return hashReader(f)
}

// judge checks the custody invariant on a census and returns every violation, each with
// the file and where each of its copies is. final adds the end state: everything at
// central exactly once, the cameras empty, the queue drained.
func (sc *scenario) judge(c *census, final bool) []string {
	var out []string
	fail := func(v *version, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if v != nil {
			msg += "\n" + sc.where(c, v)
		}
		out = append(out, msg)
	}
	if c.centralErr != nil {
		fail(nil, "CENTRAL UNREADABLE: listing central's store: %v", c.centralErr)
	}
	if c.dockErr != nil {
		fail(nil, "DOCK UNREADABLE: %v", c.dockErr)
	}
	if c.ledger != nil {
		fail(nil, "LEDGER BROKEN: %v", c.ledger)
	}
	var stuck, undrained []string
	for _, v := range sc.Versions {
		if !v.placed {
			continue
		}
		atCentral := sc.atCentral(c, v)
		onCamera := c.camera[v.Serial][v.Name] == v.SHA
		inDock := len(sc.inDock(c, v)) > 0
		switch {
		case len(atCentral) == 0 && !onCamera && c.dockRead && !inDock:
			fail(v, "LOST %s: not at central under its camera and officer, not on the camera, not durable in the dock's spool", v)
			out[len(out)-1] += sc.sameSize(c, v)
		case len(atCentral) > 1:
			fail(v, "STORED %d TIMES at central: %s", len(atCentral), v)
		case final && (len(atCentral) == 0 || onCamera):
			stuck = append(stuck, "  "+v.String()+"\n"+sc.whereShort(c, v))
		}
	}
	if len(stuck) > 0 {
		fail(nil, "STUCK: %d file version(s) not at central or still on the camera once the kills stopped:\n%s", len(stuck), strings.Join(stuck, "\n"))
	}
	for _, cc := range c.central {
		m := cc.Meta
		switch {
		case cc.Err != nil:
			fail(nil, "CENTRAL COPY UNREADABLE: %s (device %s, name %q): %v", cc.Path, m.Device, m.Name, cc.Err)
		case cc.Hash != cc.SHA256 || cc.Size != cc.sizeOnDisk():
			fail(nil, "CENTRAL COPY CORRUPT: %s (device %s, name %q, id %s) holds %d bytes sha256 %s, its metadata says %d bytes sha256 %s%s",
				cc.Path, m.Device, m.Name, m.ID, cc.sizeOnDisk(), short(cc.Hash), cc.Size, short(cc.SHA256), sc.whose(cc.Hash))
		}
		if v := sc.exact(m.Device, m.Name, cc.Hash); v != nil {
			if m.Officer != v.Officer {
				fail(v, "WRONG OFFICER at central: %s filed under officer %q (id %s)", v, m.Officer, m.ID)
			}
			continue
		}
		if cc.Err == nil {
			fail(nil, "MISFILED at central: %s is filed as device %s, name %q, officer %q (id %s), %d bytes sha256 %s: no file of that camera and name ever had these bytes%s",
				cc.Path, m.Device, m.Name, m.Officer, m.ID, cc.Size, short(cc.Hash), sc.whose(cc.Hash))
		}
	}
	for _, d := range c.dock {
		if d.State != queue.Freed && (d.Err != nil || d.Hash != d.SHA256) {
			fail(sc.exact(d.Device, d.Name, d.SHA256), "DOCK COPY NOT DURABLE: record %s (%s, device %s, name %q, sha256 %s) but its spool copy reads back as sha256 %s (%v)",
				d.ID, d.State, d.Device, d.Name, short(d.SHA256), short(d.Hash), d.Err)
		}
		v := sc.exact(d.Device, d.Name, d.SHA256)
		if v == nil {
			fail(nil, "DOCK RECORD MATCHES NO FILE: record %s (%s) says device %s, name %q, %d bytes sha256 %s: no file of that camera and name ever had these bytes%s",
				d.ID, d.State, d.Device, d.Name, d.Size, short(d.SHA256), sc.whose(d.SHA256))
		} else if d.Officer != v.Officer {
			fail(v, "WRONG OFFICER on the dock: record %s says officer %q", d.ID, d.Officer)
		}
		if final && (d.State == queue.Spooled || d.State == queue.Uploading) {
			undrained = append(undrained, fmt.Sprintf("  record %s %s (device %s, name %q, %d bytes)", d.ID, d.State, d.Device, d.Name, d.Size))
		}
	}
	if len(undrained) > 0 {
		fail(nil, "QUEUE NOT DRAINED: %d record(s) still waiting to upload:\n%s", len(undrained), strings.Join(undrained, "\n"))
	}
	for _, cam := range sc.Cams {
		for name, sum := range c.camera[cam.Serial] {
			if sc.exact(cam.Serial, name, sum) == nil {
				fail(nil, "CAMERA FILE CHANGED: %s/%q holds sha256 %s, which the test never put there", cam.Serial, name, short(sum))
			}
		}
	}
	if final {
		for _, p := range c.stray {
			fail(nil, "STRAY COPY at central: %s is in central's recordings but in no stored entry", p)
		}
	}
	return out
}

func (cc centralCopy) sizeOnDisk() int64 {
	if info, err := os.Stat(cc.Path); err == nil {
		return info.Size()
	}
	return -1
}

// atCentral returns central's good copies of v: filed under its camera, name and officer,
// and the stored file hashing to its bytes.
func (sc *scenario) atCentral(c *census, v *version) []centralCopy {
	var out []centralCopy
	for _, cc := range c.central {
		if cc.Meta.Device == v.Serial && cc.Meta.Name == v.Name && cc.Meta.Officer == v.Officer && cc.Hash == v.SHA && cc.SHA256 == v.SHA && cc.Err == nil {
			out = append(out, cc)
		}
	}
	return out
}

// inDock returns the dock's durable copies of v: a record of its camera and name with its
// hash, not freed, whose spool file reads back to those bytes.
func (sc *scenario) inDock(c *census, v *version) []dockCopy {
	var out []dockCopy
	for _, d := range c.dock {
		if d.Device == v.Serial && d.Name == v.Name && d.SHA256 == v.SHA && d.State != queue.Freed && d.Err == nil && d.Hash == v.SHA {
			out = append(out, d)
		}
	}
	return out
}

// exact returns the placed version of that camera, name and bytes.
func (sc *scenario) exact(serial, name, sha string) *version {
	for _, v := range sc.Versions {
		if v.placed && v.Serial == serial && v.Name == name && v.SHA == sha {
			return v
		}
	}
	return nil
}

// whose names the versions that had these bytes, for a misfiled copy.
func (sc *scenario) whose(sha string) string {
	var vs []string
	for _, v := range sc.Versions {
		if v.SHA == sha {
			vs = append(vs, fmt.Sprintf("%s/%q gen %d", v.Serial, v.Name, v.Gen))
		}
	}
	if len(vs) == 0 {
		return " (no file the test made had these bytes)"
	}
	return " (these are the bytes of " + strings.Join(vs, ", ") + ")"
}

// where lists every copy that could be v's: on its camera, in the dock's queue (a record
// of its camera and name, or with its bytes), at central (filed under its camera and name,
// or with its bytes).
func (sc *scenario) where(c *census, v *version) string {
	var b strings.Builder
	switch sum, ok := c.camera[v.Serial][v.Name]; {
	case !ok:
		fmt.Fprintf(&b, "    camera %s: no file %q\n", v.Serial, v.Name)
	case sum == v.SHA:
		fmt.Fprintf(&b, "    camera %s: holds it\n", v.Serial)
	default:
		fmt.Fprintf(&b, "    camera %s: %q holds other bytes, sha256 %s%s\n", v.Serial, v.Name, short(sum), sc.whose(sum))
	}
	if !c.dockRead {
		b.WriteString("    dock: not inspected (the agent was running)\n")
	} else {
		n := 0
		for _, d := range c.dock {
			if (d.Device == v.Serial && d.Name == v.Name) || d.SHA256 == v.SHA {
				n++
				rb := "spool copy reads back"
				switch {
				case d.State == queue.Freed:
					rb = "spool copy freed"
				case d.Err != nil:
					rb = "spool copy unreadable: " + d.Err.Error()
				case d.Hash != d.SHA256:
					rb = "spool copy reads back as " + short(d.Hash)
				}
				fmt.Fprintf(&b, "    dock: record %s %s, device %s, name %q, officer %s, %d bytes sha256 %s%s; %s\n",
					d.ID, d.State, d.Device, d.Name, d.Officer, d.Size, short(d.SHA256), sc.whose(d.SHA256), rb)
			}
		}
		if n == 0 {
			b.WriteString("    dock: no record of it\n")
		}
	}
	n := 0
	for _, cc := range c.central {
		if (cc.Meta.Device == v.Serial && cc.Meta.Name == v.Name) || cc.SHA256 == v.SHA || cc.Hash == v.SHA {
			n++
			fmt.Fprintf(&b, "    central: %s: id %s, device %s, name %q, officer %s, %d bytes, sha256 %s, stored file sha256 %s%s\n",
				cc.Path, cc.Meta.ID, cc.Meta.Device, cc.Meta.Name, cc.Meta.Officer, cc.Size, short(cc.SHA256), short(cc.Hash), sc.whose(cc.Hash))
		}
	}
	if n == 0 {
		b.WriteString("    central: nothing under that camera and name, nor with its bytes\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// sameSize lists the other copies of v's size on the dock and at central: what a check by
// size alone (or a colliding id) may have taken for it.
func (sc *scenario) sameSize(c *census, v *version) string {
	var b strings.Builder
	for _, d := range c.dock {
		if d.Size == v.Size && !(d.Device == v.Serial && d.Name == v.Name) && d.SHA256 != v.SHA {
			fmt.Fprintf(&b, "\n    same size on the dock: record %s %s, device %s, name %q, sha256 %s%s", d.ID, d.State, d.Device, d.Name, short(d.SHA256), sc.whose(d.SHA256))
		}
	}
	for _, cc := range c.central {
		if cc.Size == v.Size && !(cc.Meta.Device == v.Serial && cc.Meta.Name == v.Name) && cc.SHA256 != v.SHA {
			fmt.Fprintf(&b, "\n    same size at central: id %s, device %s, name %q, sha256 %s%s", cc.Meta.ID, cc.Meta.Device, cc.Meta.Name, short(cc.SHA256), sc.whose(cc.SHA256))
		}
	}
	return b.String()
}

// whereShort is where for a list: one line for each place.
func (sc *scenario) whereShort(c *census, v *version) string {
	var parts []string
	switch sum, ok := c.camera[v.Serial][v.Name]; {
	case !ok:
		parts = append(parts, "camera: gone")
	case sum == v.SHA:
		parts = append(parts, "camera: holds it")
	default:
		parts = append(parts, "camera: other bytes "+short(sum))
	}
	var dock []string
	for _, d := range c.dock {
		if d.Device == v.Serial && d.Name == v.Name {
			s := fmt.Sprintf("%s %s", d.ID, d.State)
			if d.SHA256 != v.SHA {
				s += " of other bytes " + short(d.SHA256)
			}
			dock = append(dock, s)
		}
	}
	switch {
	case !c.dockRead:
		parts = append(parts, "dock: not read")
	case len(dock) == 0:
		parts = append(parts, "dock: no record")
	default:
		parts = append(parts, "dock: "+strings.Join(dock, ", "))
	}
	var cen []string
	for _, cc := range c.central {
		if cc.Meta.Device == v.Serial && cc.Meta.Name == v.Name {
			s := cc.Meta.ID
			if cc.Hash != v.SHA {
				s += " of other bytes " + short(cc.Hash)
			}
			cen = append(cen, s)
		}
	}
	if len(cen) == 0 {
		cen = []string{"none"}
	}
	parts = append(parts, "central: "+strings.Join(cen, ", "))
	return "      " + strings.Join(parts, "; ")
}

// summary counts where the versions are, for the log after each check.
func (sc *scenario) summary(c *census) string {
	var placed, central, camera, dock int
	for _, v := range sc.Versions {
		if !v.placed {
			continue
		}
		placed++
		if len(sc.atCentral(c, v)) > 0 {
			central++
		}
		if c.camera[v.Serial][v.Name] == v.SHA {
			camera++
		}
		if len(sc.inDock(c, v)) > 0 {
			dock++
		}
	}
	states := map[queue.State]int{}
	for _, d := range c.dock {
		states[d.State]++
	}
	var st []string
	for s, n := range states {
		st = append(st, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(st)
	dockSays := "not read"
	if c.dockRead {
		dockSays = fmt.Sprintf("%d durable [%s]", dock, strings.Join(st, ", "))
	}
	return fmt.Sprintf("%d versions: %d at central (%d entries), %d on cameras, dock %s", placed, central, len(c.central), camera, dockSays)
}
