// Package durable owns the step that makes a write survive a power cut once it is done: the
// fsync of a file or of the directory holding a new name. The dock's spool and central's store share it.
package durable

import (
	"fmt"
	"os"
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
