package vmtest

import (
	"compress/gzip"
	"fmt"
	"io"
	"strings"
)

// File is one entry of an initramfs: a directory, a regular file or a device node.
type File struct {
	Name         string // path inside the archive, no leading slash
	Mode         uint32 // permission bits and type (S_IFDIR, S_IFREG, S_IFCHR)
	Data         []byte
	Major, Minor uint32 // of a device node
}

// File types of a newc header's mode.
const (
	ModeDir  = 0o040000
	ModeFile = 0o100000
	ModeChar = 0o020000
)

// WriteInitramfs writes files as a gzip'd cpio archive in the "newc" format, the one
// the kernel unpacks as its initramfs. Parent directories must come before their entries.
func WriteInitramfs(w io.Writer, files []File) error {
	zw := gzip.NewWriter(w)
	ino := uint32(1)
	entry := func(name string, mode uint32, data []byte, major, minor uint32) error {
		nlink := uint32(1)
		if mode&0o170000 == ModeDir {
			nlink = 2
		}
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, nlink, 0, len(data), 0, 0, major, minor, len(name)+1, 0)
		ino++
		buf := []byte(hdr + name + "\x00")
		buf = append(buf, make([]byte, pad4(len(buf)))...)
		buf = append(buf, data...)
		buf = append(buf, make([]byte, pad4(len(data)))...)
		_, err := zw.Write(buf)
		return err
	}
	for _, f := range files {
		name := strings.TrimPrefix(f.Name, "/")
		if err := entry(name, f.Mode, f.Data, f.Major, f.Minor); err != nil {
			return err
		}
	}
	if err := entry("TRAILER!!!", 0, nil, 0, 0); err != nil {
		return err
	}
	return zw.Close()
}

func pad4(n int) int { return (4 - n%4) % 4 }
