// Package durable owns the step that makes a write survive a power cut once it is done: the
// fsync of a file or of the directory holding a new name. The dock's spool and central's store share it.
package durable

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Sync fsyncs the file or directory at path. For a directory that makes its entries
// durable: a file created, renamed or linked into it survives a power cut.
func Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// WriteBehindStep is how many written bytes pile up before the disk is started on them.
const WriteBehindStep = 16 << 20

// WriteBehind is called after [off, end) of f was written. When the write crossed a
// multiple of WriteBehindStep it starts the kernel's writeback of the bytes since the step
// it began in, without waiting: the final fsync then finds little left to flush, and many
// writers finishing at once do not all wait on one flush. It keeps no state, so writers
// at any offsets (several instances of one upload) may share a file. Advice only: a
// kernel or filesystem without it leaves the work to fsync.
func WriteBehind(f *os.File, off, end int64) {
	if end/WriteBehindStep > off/WriteBehindStep {
		from := (off / WriteBehindStep) * WriteBehindStep
		_ = unix.SyncFileRange(int(f.Fd()), from, end-from, unix.SYNC_FILE_RANGE_WRITE)
	}
}
