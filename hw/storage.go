package hw

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrRefusedPath means a file on a camera's storage was not opened because reaching it
// would leave the mount or follow a link, or because it is not a regular file.
var ErrRefusedPath = errors.New("refused on camera storage")

// openat2 is unix.Openat2, replaceable by tests to exercise the fallback.
var openat2 = unix.Openat2

// OpenBeneath opens name, a '/'-separated path relative to mount, for reading, strictly
// beneath mount: no symbolic link is followed anywhere in name (mount itself is the
// dock's own path and may be one), no ".." is taken, and only a regular file is returned
// (a FIFO, device or directory is refused without blocking). It uses openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS, and where the kernel lacks
// openat2 (ENOSYS: before Linux 5.6, or under qemu-user) walks name one component at a
// time with openat(O_NOFOLLOW). A refusal wraps ErrRefusedPath; a missing file wraps
// fs.ErrNotExist.
func OpenBeneath(mount, name string) (*os.File, error) {
	fail := func(err error) (*os.File, error) {
		return nil, fmt.Errorf("open %q beneath %s: %w", name, mount, err)
	}
	if err := checkRelative(name); err != nil {
		return fail(err)
	}
	dir, err := unix.Open(mount, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open mount %s: %w", mount, err)
	}
	defer unix.Close(dir)
	// O_NONBLOCK: a FIFO opens at once instead of waiting for a writer, and is refused.
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	fd, err := openat2(dir, name, &unix.OpenHow{
		Flags:   flags,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		fd, err = walkBeneath(dir, name, flags)
	}
	if err != nil {
		return fail(refusal(err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fail(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return fail(fmt.Errorf("%w: not a regular file (%s)", ErrRefusedPath, fileType(st.Mode)))
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return fail(err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(mount, name)), nil
}

// checkRelative refuses a name that is empty, absolute or takes "..": such a name is no
// file of the camera's, whatever the mount holds.
func checkRelative(name string) error {
	if name == "" || strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w: not a relative path", ErrRefusedPath)
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return fmt.Errorf("%w: a \"..\" component", ErrRefusedPath)
		}
	}
	return nil
}

// walkBeneath opens name beneath dir one component at a time, each directory with
// O_NOFOLLOW|O_DIRECTORY, the last with flags (which hold O_NOFOLLOW): a link anywhere
// fails with ELOOP (or ENOTDIR), as openat2 with RESOLVE_NO_SYMLINKS does.
func walkBeneath(dir int, name string, flags int) (int, error) {
	var comps []string
	for c := range strings.SplitSeq(name, "/") {
		if c != "" && c != "." {
			comps = append(comps, c)
		}
	}
	if len(comps) == 0 {
		return -1, fmt.Errorf("%w: names no file", ErrRefusedPath)
	}
	at := dir
	defer func() {
		if at != dir {
			unix.Close(at)
		}
	}()
	for _, c := range comps[:len(comps)-1] {
		next, err := unix.Openat(at, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		if at != dir {
			unix.Close(at)
		}
		at = next
	}
	return unix.Openat(at, comps[len(comps)-1], flags, 0)
}

// refusal names the errors by which the kernel refuses a path for leaving the mount or
// for a link.
func refusal(err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%w: a symbolic link on the path (not followed): %w", ErrRefusedPath, err)
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%w: the path leaves the mount: %w", ErrRefusedPath, err)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: a component of the path is not a directory (or is a link to one): %w", ErrRefusedPath, err)
	}
	return err
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return fmt.Sprintf("mode %#o", mode&unix.S_IFMT)
}
