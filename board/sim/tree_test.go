package sim

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"dock/hw"
	"dock/hw/camlink"
)

// dockedCamera makes a camera with st, lets prepare fill it, docks it in a one-slot dock
// and unlocks its storage.
func dockedCamera(t *testing.T, st CameraState, prepare func(*Camera)) (*Dock, *Camera, *camlink.Link) {
	t.Helper()
	d := newDock(t, 1)
	cam, err := NewCamera(t.TempDir(), st)
	if err != nil {
		t.Fatal(err)
	}
	prepare(cam)
	if err := d.Dock(0, cam); err != nil {
		t.Fatal(err)
	}
	l := link(t, d, 0)
	if err := unlock(l, st.Password); err != nil {
		t.Fatal(err)
	}
	return d, cam, l
}

// Load takes a card's folders as they are and skips, saying why, what is no regular file
// or has a name the dock would refuse.
func TestLoadWalksTree(t *testing.T) {
	src := t.TempDir()
	put := func(name, data string) {
		t.Helper()
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("VID_0001.MP4", "top")
	put("DCIM/100MEDIA/VID_0002.MP4", "video")
	put("RECORD/REC_0001.WAV", "audio")
	put("PHOTO/IMG_0001.JPG", "still")
	put("BAD\\NAME.MP4", "backslash")
	put(strings.Repeat("d/", camlink.MaxDepth)+"DEEP.MP4", "too deep")
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("not footage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "DCIM/100MEDIA/LINK.MP4")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(src, "LINKDIR")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "PIPE.MP4"), 0o644); err != nil {
		t.Fatal(err)
	}

	cam, err := NewCamera(t.TempDir(), DefaultCamera("CAM-T", "OF", "U"))
	if err != nil {
		t.Fatal(err)
	}
	skipped, err := cam.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range cam.Files() {
		got = append(got, f.Name)
		b, err := os.ReadFile(filepath.Join(cam.Footage(), filepath.FromSlash(f.Name)))
		want, _ := os.ReadFile(filepath.Join(src, filepath.FromSlash(f.Name)))
		if err != nil || string(b) != string(want) || f.Size != int64(len(want)) {
			t.Errorf("%s on the camera: %q (%d), want %q", f.Name, b, f.Size, want)
		}
	}
	if want := []string{"DCIM/100MEDIA/VID_0002.MP4", "PHOTO/IMG_0001.JPG", "RECORD/REC_0001.WAV", "VID_0001.MP4"}; !slices.Equal(got, want) {
		t.Fatalf("camera holds %q, want %q", got, want)
	}
	why := map[string]string{}
	for _, s := range skipped {
		why[s.Path] = s.Why
	}
	for path, want := range map[string]string{
		"DCIM/100MEDIA/LINK.MP4": "symbolic link", "LINKDIR": "symbolic link", "PIPE.MP4": "not a regular file",
		"BAD\\NAME.MP4": "backslash", strings.Repeat("d/", camlink.MaxDepth) + "DEEP.MP4": "components",
	} {
		if !strings.Contains(why[path], want) {
			t.Errorf("%s skipped because %q, want %q", path, why[path], want)
		}
	}
	if len(skipped) != 5 {
		t.Errorf("skipped %+v, want 5", skipped)
	}
}

// A camera in the DCF layout, over its serial link and storage: the dock lists folders'
// recordings, reads them at the mount and deletes one in a folder.
func TestDCFCameraOverPseudoTerminal(t *testing.T) {
	st := DefaultCamera("CAM-D", "OF", "U")
	st.Layout = LayoutDCF
	d, cam, l := dockedCamera(t, st, func(c *Camera) {
		if err := c.Generate(6, 10_000, 3, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), map[int]string{3: "dispute"}); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	listing, err := l.List(ctx, camlink.ListLimits{})
	if err != nil || len(listing.Refused) != 0 || len(listing.Files) != 6 {
		t.Fatalf("list = %+v, %v", listing, err)
	}
	kinds := map[string]int{}
	for _, f := range listing.Files {
		kinds[strings.SplitN(f.Name, "/", 2)[0]]++
		if !strings.Contains(f.Name, "CAM-D_20250301_") {
			t.Errorf("%s is not named by device and time", f.Name)
		}
	}
	if kinds["DCIM"] != 4 || kinds["RECORD"] != 1 || kinds["PHOTO"] != 1 {
		t.Fatalf("layout %v, want 4 DCIM, 1 RECORD, 1 PHOTO", kinds)
	}
	mount := d.Board().Slots[0].Mount
	for _, f := range listing.Files {
		r, err := d.Board().Open(filepath.Join(mount, filepath.FromSlash(f.Name)))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		want, _ := os.ReadFile(filepath.Join(cam.Footage(), filepath.FromSlash(f.Name)))
		if len(got) != 10_000 || string(got) != string(want) {
			t.Fatalf("%s read %d bytes, want the camera's %d", f.Name, len(got), len(want))
		}
	}
	victim := listing.Files[0]
	if !strings.HasPrefix(victim.Name, "DCIM/100MEDIA/") {
		t.Fatalf("first recording %s", victim.Name)
	}
	if err := l.Delete(ctx, victim.Name, victim.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mount, filepath.FromSlash(victim.Name))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("deleted recording still at the mount: %v", err)
	}
	if left, err := l.List(ctx, camlink.ListLimits{}); err != nil || len(left.Files) != 5 {
		t.Fatalf("after delete: %+v, %v", left, err)
	}
}

// A hostile camera: entries the dock must refuse in its listing, and links on its
// storage. The good recordings are listed and read; the bad entries are refused one by
// one; the links are listed (their names are fine) but never opened.
func TestHostileCameraListingAndLinks(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "dock-secret")
	if err := os.WriteFile(secret, []byte("the dock's own file"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := DefaultCamera("CAM-X", "OF", "U")
	st.ExtraListing = []camlink.FileEntry{
		{Name: "../../etc/shadow", Size: 1},
		{Name: "DCIM/100MEDIA/VID_0001.MP4", Size: 7}, // listed twice: both refused
		{Name: "NEG.MP4", Size: -5},
		{Name: "CTRL\x1b[2J.MP4", Size: 1},
	}
	d, _, l := dockedCamera(t, st, func(c *Camera) {
		for _, name := range []string{"DCIM/100MEDIA/VID_0001.MP4", "DCIM/100MEDIA/VID_0002.MP4", "RECORD/REC_0001.WAV"} {
			if err := c.Put(name, []byte("footage"), FileMeta{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.AddSymlink("DCIM/100MEDIA/VID_0003.MP4", secret); err != nil {
			t.Fatal(err)
		}
		if err := c.AddSymlink("DCIM/101MEDIA", "100MEDIA"); err != nil { // a linked folder
			t.Fatal(err)
		}
		if err := c.Update(func(st *CameraState) { st.Files["DCIM/101MEDIA/VID_0002.MP4"] = FileMeta{} }); err != nil {
			t.Fatal(err)
		}
	})
	listing, err := l.List(context.Background(), camlink.ListLimits{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range listing.Files {
		names = append(names, f.Name)
	}
	// The links' names are fine, so they are listed: opening is where they stop.
	if want := []string{"DCIM/100MEDIA/VID_0002.MP4", "DCIM/100MEDIA/VID_0003.MP4", "DCIM/101MEDIA", "DCIM/101MEDIA/VID_0002.MP4", "RECORD/REC_0001.WAV"}; !slices.Equal(names, want) {
		t.Fatalf("listed %q, want %q", names, want)
	}
	if len(listing.Refused) != 5 { // shadow, VID_0001 twice, NEG, CTRL
		t.Fatalf("refused %+v, want 5", listing.Refused)
	}
	mount := d.Board().Slots[0].Mount
	for name, refused := range map[string]bool{
		"DCIM/100MEDIA/VID_0002.MP4": false, "RECORD/REC_0001.WAV": false,
		"DCIM/100MEDIA/VID_0003.MP4": true, "DCIM/101MEDIA": true, "DCIM/101MEDIA/VID_0002.MP4": true,
	} {
		f, err := d.Board().Open(filepath.Join(mount, filepath.FromSlash(name)))
		if refused {
			if err == nil {
				b, _ := io.ReadAll(f)
				f.Close()
				t.Errorf("%s opened through a link, read %q", name, b)
			} else if !errors.Is(err, hw.ErrRefusedPath) {
				t.Errorf("%s: %v, want a refusal", name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		f.Close()
	}
}

// A recording over 4 GiB costs the simulator a few blocks, and is listed and opened at
// its full size.
func TestSparseRecordingOver4GiB(t *testing.T) {
	const size = 5<<30 + 123
	d, cam, l := dockedCamera(t, DefaultCamera("CAM-S", "OF", "U"), func(c *Camera) {
		if err := c.PutSparse("DCIM/100MEDIA/VID_0001.MP4", size, 9, FileMeta{Mark: "other"}); err != nil {
			t.Fatal(err)
		}
	})
	listing, err := l.List(context.Background(), camlink.ListLimits{})
	if err != nil || len(listing.Files) != 1 || listing.Files[0].Size != size {
		t.Fatalf("list = %+v, %v", listing, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(cam.Footage(), "DCIM/100MEDIA/VID_0001.MP4"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Fatalf("%d bytes allocated for a sparse recording", st.Blocks*512)
	}
	f, err := d.Board().Open(filepath.Join(d.Board().Slots[0].Mount, "DCIM/100MEDIA/VID_0001.MP4"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.Size() != size {
		t.Fatalf("opened size %v, %v", info, err)
	}
	head := make([]byte, 4096)
	if _, err := io.ReadFull(f, head); err != nil || string(head) == string(make([]byte, 4096)) {
		t.Fatalf("head %v: all zeros or unread", err)
	}
}

// The storage link's misbehaviours happen on reading a regular file: an unreadable
// recording fails with EIO, a stalled one delivers its first bytes and then nothing until
// the dock gives up and closes it.
func TestStorageLinkMisbehaves(t *testing.T) {
	st := DefaultCamera("CAM-M", "OF", "U")
	st.Unreadable = []string{"DCIM/100MEDIA/B.MP4"}
	st.StallAfter = 1000
	d, _, _ := dockedCamera(t, st, func(c *Camera) {
		for _, name := range []string{"DCIM/100MEDIA/A.MP4", "DCIM/100MEDIA/B.MP4", "DCIM/100MEDIA/C.MP4"} {
			if err := c.Put(name, make([]byte, 5000), FileMeta{}); err != nil {
				t.Fatal(err)
			}
		}
	})
	open := func(name string) fs.File {
		f, err := d.Board().Open(filepath.Join(d.Board().Slots[0].Mount, name))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if _, err := io.ReadAll(open("DCIM/100MEDIA/B.MP4")); !errors.Is(err, syscall.EIO) {
		t.Errorf("unreadable recording read: %v", err)
	}
	if b, err := io.ReadAll(open("DCIM/100MEDIA/C.MP4")); err != nil || len(b) != 5000 {
		t.Errorf("good recording: %d bytes, %v", len(b), err)
	}
	stalled := open("DCIM/100MEDIA/A.MP4")
	got := make(chan int, 1)
	go func() {
		b, _ := io.ReadAll(stalled)
		got <- len(b)
	}()
	select {
	case n := <-got:
		t.Fatalf("stalled recording ended after %d bytes", n)
	case <-time.After(200 * time.Millisecond):
	}
	stalled.Close()
	select {
	case n := <-got:
		if n != 1000 {
			t.Fatalf("stalled after %d bytes, want 1000", n)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("close did not release the stalled read")
	}
}

// The dock's opener reads nothing that is not on a bay's mount.
func TestOpenOutsideMountsRefused(t *testing.T) {
	d := newDock(t, 1)
	outside := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := d.Board().Open(outside); err == nil {
		f.Close()
		t.Fatal("opened a file on no mount")
	}
}
