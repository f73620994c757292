package hw

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A camera's storage as the dock sees it at the mount, with what a hostile camera might
// hold, opened with openat2 and with the component walk kernels without it use.
func TestOpenBeneath(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	real := filepath.Join(root, "card")
	mount := filepath.Join(root, "mnt-bay0") // the dock's own link to the card: followed
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, path string) {
		t.Helper()
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "secret"), "the dock's own file")
	write(filepath.Join(real, "VID_0001.MP4"), "top")
	write(filepath.Join(real, "DCIM/100MEDIA/VID_0002.MP4"), "nested")
	link(filepath.Join(outside, "secret"), filepath.Join(real, "OUT.MP4"))
	link("VID_0001.MP4", filepath.Join(real, "IN.MP4"))
	link("DCIM", filepath.Join(real, "LINKDIR"))
	link(outside, filepath.Join(real, "OUTDIR"))
	link("/proc/self/root/etc/hostname", filepath.Join(real, "MAGIC.MP4"))
	if err := unix.Mkfifo(filepath.Join(real, "PIPE.MP4"), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := unix.Mknod(filepath.Join(real, "NULL.MP4"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))) // /dev/null
	link(real, mount)

	tests := []struct {
		name string
		want string // content; "" when refused
		err  error  // wrapped by the refusal
	}{
		{"VID_0001.MP4", "top", nil},
		{"DCIM/100MEDIA/VID_0002.MP4", "nested", nil},
		{"./DCIM/100MEDIA/VID_0002.MP4", "nested", nil},
		{"OUT.MP4", "", ErrRefusedPath},
		{"IN.MP4", "", ErrRefusedPath},
		{"LINKDIR/100MEDIA/VID_0002.MP4", "", ErrRefusedPath},
		{"OUTDIR/secret", "", ErrRefusedPath},
		{"MAGIC.MP4", "", ErrRefusedPath},
		{"../outside/secret", "", ErrRefusedPath},
		{"DCIM/../VID_0001.MP4", "", ErrRefusedPath},
		{"/etc/hostname", "", ErrRefusedPath},
		{"", "", ErrRefusedPath},
		{"PIPE.MP4", "", ErrRefusedPath},
		{"NULL.MP4", "", ErrRefusedPath},
		{"DCIM", "", ErrRefusedPath},
		{"MISSING.MP4", "", fs.ErrNotExist},
		{"DCIM/MISSING/VID.MP4", "", fs.ErrNotExist},
	}
	for _, how := range []string{"openat2", "walk"} {
		t.Run(how, func(t *testing.T) {
			if how == "walk" {
				openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
				t.Cleanup(func() { openat2 = unix.Openat2 })
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					if tc.name == "NULL.MP4" && dev != nil {
						t.Skipf("mknod: %v", dev)
					}
					done := make(chan struct{})
					var f *os.File
					var err error
					go func() { f, err = OpenBeneath(mount, tc.name); close(done) }()
					select {
					case <-done:
					case <-time.After(5 * time.Second):
						t.Fatal("OpenBeneath blocked")
					}
					if tc.err != nil {
						if err == nil {
							b, _ := io.ReadAll(f)
							f.Close()
							t.Fatalf("opened, read %q; want %v", b, tc.err)
						}
						if !errors.Is(err, tc.err) {
							t.Fatalf("err = %v, want %v", err, tc.err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					b, err := io.ReadAll(f)
					if err != nil || string(b) != tc.want {
						t.Fatalf("read %q, %v; want %q", b, err, tc.want)
					}
				})
			}
		})
	}
}

// A missing mount is said to be the mount's fault, not the file's.
func TestOpenBeneathMissingMount(t *testing.T) {
	_, err := OpenBeneath(filepath.Join(t.TempDir(), "gone"), "VID.MP4")
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrRefusedPath) {
		t.Fatalf("err = %v", err)
	}
}
