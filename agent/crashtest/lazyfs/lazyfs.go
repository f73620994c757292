// go-fuse's splice code does not build for 32-bit arm; lazyfs runs on the machine that runs
// the tests, never on the dock.

//go:build linux && !arm

// Package lazyfs owns a FUSE filesystem that keeps unsynced bytes in memory, so that a
// test can cut the power by killing its server. Test tooling, never in the dock binary.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a FUSE filesystem over a backing directory that keeps every file's written bytes
// in memory until the file is fsynced (fsync, fdatasync or msync reach it as FUSE fsync),
// the way a disk's volatile cache and the page cache hold them. Killing the process that
// serves it is a power cut: what was not synced is gone, and the kernel can no longer
// write back its dirty pages. The model of Jepsen's LazyFS, with its limit: metadata
// (create, rename, unlink, mkdir) reaches the backing directory at once, only data is lost.
//
// The mount must be served by a process that never touches it itself: a page fault on a
// mapping of the mount would wait for the server while the Go runtime stops the world.
type FS struct {
	Backing, Mount string

	srv *fuse.Server
	st  *lazyState
}

// lazyState is the mount's unsynced data, by backing inode.
type lazyState struct {
	mu       sync.Mutex
	overlays map[uint64]*overlay
}

// Mount mounts backing at mount (which must exist). It needs /dev/fuse and root.
func Mount(backing, mount string) (*FS, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, err
	}
	l := &FS{Backing: backing, Mount: mount, st: &lazyState{overlays: map[uint64]*overlay{}}}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &lazyNode{LoopbackNode: fs.LoopbackNode{RootData: r}, st: l.st}
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	zero := time.Duration(0)
	srv, err := fs.Mount(mount, root.RootNode, &fs.Options{
		AttrTimeout: &zero, EntryTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{DirectMount: true, DirectMountStrict: true, DisableReadDirPlus: true, FsName: "lazyfs", Name: "lazyfs"},
	})
	if err != nil {
		return nil, fmt.Errorf("mount lazyfs at %s: %w", mount, err)
	}
	l.srv = srv
	return l, nil
}

// Pending returns how many bytes wait for an fsync, in whole blocks.
func (l *FS) Pending() int64 {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	var n int64
	for _, o := range l.st.overlays {
		n += o.pending()
	}
	return n
}

// Wait returns when the filesystem is unmounted.
func (l *FS) Wait() { l.srv.Wait() }

type lazyNode struct {
	fs.LoopbackNode
	st *lazyState
}

func (n *lazyNode) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

// overlay returns the inode's unsynced data, opening its backing file once.
func (n *lazyNode) overlay(ino uint64, path string) (*overlay, syscall.Errno) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	if o := n.st.overlays[ino]; o != nil {
		// The kernel may forget a name before it is unlinked, so an overlay can outlive its
		// file and its inode number be reused: only an overlay of a linked file is current.
		var st syscall.Stat_t
		if syscall.Fstat(int(o.f.Fd()), &st) == nil && st.Nlink > 0 {
			return o, 0
		}
		o.f.Close()
		delete(n.st.overlays, ino)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fs.ToErrno(err)
	}
	o := &overlay{f: f, size: info.Size(), valid: info.Size(), blocks: map[int64][]byte{}}
	n.st.overlays[ino] = o
	return o, 0
}

func (n *lazyNode) wrap(ch *fs.Inode, path string, fh fs.FileHandle, flags uint32) (fs.FileHandle, syscall.Errno) {
	o, errno := n.overlay(ch.StableAttr().Ino, path)
	if errno != 0 {
		return nil, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		o.truncate(0) // the backing file was truncated by the open itself
	}
	return &lazyFile{inner: fh, o: o}, 0
}

func (n *lazyNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	lf, errno := n.wrap(n.EmbeddedInode(), n.backingPath(), fh, flags)
	return lf, ff, errno
}

func (n *lazyNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	lf, errno := n.wrap(ch, filepath.Join(n.backingPath(), name), fh, flags)
	return ch, lf, ff, errno
}

// forget drops the unsynced data of a file that is unlinked or replaced.
func (n *lazyNode) forget(name string) {
	if ch := n.GetChild(name); ch != nil {
		n.st.mu.Lock()
		if o := n.st.overlays[ch.StableAttr().Ino]; o != nil {
			o.f.Close()
			delete(n.st.overlays, ch.StableAttr().Ino)
		}
		n.st.mu.Unlock()
	}
}

func (n *lazyNode) Unlink(ctx context.Context, name string) syscall.Errno {
	n.forget(name)
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *lazyNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if p, ok := newParent.(*lazyNode); ok && flags == 0 {
		p.forget(newName)
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *lazyNode) sized(out *fuse.AttrOut) {
	n.st.mu.Lock()
	o := n.st.overlays[n.StableAttr().Ino]
	n.st.mu.Unlock()
	if o != nil {
		out.Size = uint64(o.length())
	}
}

// Lookup answers with the size that includes unsynced data: the kernel drops cached
// pages (and a mapping faults) past any smaller size it is told.
func (n *lazyNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno != 0 {
		return ch, errno
	}
	n.st.mu.Lock()
	o := n.st.overlays[ch.StableAttr().Ino]
	n.st.mu.Unlock()
	if o != nil {
		out.Size = uint64(o.length())
	}
	return ch, 0
}

func (n *lazyNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.LoopbackNode.Getattr(ctx, nil, out); errno != 0 {
		return errno
	}
	n.sized(out)
	return 0
}

func (n *lazyNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		// A size change is data: it waits for fsync like a write.
		o, errno := n.overlay(n.StableAttr().Ino, n.backingPath())
		if errno != 0 {
			return errno
		}
		o.truncate(int64(sz))
		in.Valid &^= fuse.FATTR_SIZE
	}
	if errno := n.LoopbackNode.Setattr(ctx, nil, in, out); errno != 0 {
		return errno
	}
	n.sized(out)
	return 0
}

// lazyFile is an open file: reads and writes go to its inode's overlay.
type lazyFile struct {
	inner fs.FileHandle
	o     *overlay
}

func (f *lazyFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.o.read(dest, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *lazyFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if err := f.o.write(data, off); err != nil {
		return 0, fs.ToErrno(err)
	}
	return uint32(len(data)), 0
}

func (f *lazyFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return fs.ToErrno(f.o.sync())
}

func (f *lazyFile) Flush(ctx context.Context) syscall.Errno { return 0 }

func (f *lazyFile) Release(ctx context.Context) syscall.Errno {
	if r, ok := f.inner.(fs.FileReleaser); ok {
		return r.Release(ctx)
	}
	return 0
}

func (f *lazyFile) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	if g, ok := f.inner.(fs.FileGetattrer); ok {
		if errno := g.Getattr(ctx, out); errno != 0 {
			return errno
		}
	}
	out.Size = uint64(f.o.length())
	return 0
}

const blockSize = 4096

// overlay is one file's unsynced state over its backing file: the logical size, whole
// blocks written since the last sync, and how much of the backing file is still valid
// (a shrink followed by growth must read zeros, not the old bytes).
type overlay struct {
	mu     sync.Mutex
	f      *os.File
	size   int64
	valid  int64
	blocks map[int64][]byte
}

func (o *overlay) length() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.size
}

func (o *overlay) pending() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int64(len(o.blocks)) * blockSize
}

// block returns block b for writing, filled from the backing file where valid.
func (o *overlay) block(b int64) ([]byte, error) {
	if blk := o.blocks[b]; blk != nil {
		return blk, nil
	}
	blk := make([]byte, blockSize)
	if from := b * blockSize; from < o.valid {
		n := min(blockSize, o.valid-from)
		if _, err := o.f.ReadAt(blk[:n], from); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	o.blocks[b] = blk
	return blk, nil
}

func (o *overlay) write(data []byte, off int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for done := 0; done < len(data); {
		pos := off + int64(done)
		blk, err := o.block(pos / blockSize)
		if err != nil {
			return err
		}
		done += copy(blk[pos%blockSize:], data[done:])
	}
	o.size = max(o.size, off+int64(len(data)))
	return nil
}

func (o *overlay) read(dest []byte, off int64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if off >= o.size {
		return 0, nil
	}
	n := int(min(int64(len(dest)), o.size-off))
	for done := 0; done < n; {
		pos := off + int64(done)
		in := pos % blockSize
		m := int(min(blockSize-in, int64(n-done)))
		if blk := o.blocks[pos/blockSize]; blk != nil {
			copy(dest[done:done+m], blk[in:])
		} else {
			clear(dest[done : done+m])
			if pos < o.valid {
				k := int(min(int64(m), o.valid-pos))
				if _, err := o.f.ReadAt(dest[done:done+k], pos); err != nil && !errors.Is(err, io.EOF) {
					return 0, err
				}
			}
		}
		done += m
	}
	return n, nil
}

func (o *overlay) truncate(size int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.size, o.valid = size, min(o.valid, size)
	for b, blk := range o.blocks {
		switch from := b * blockSize; {
		case from >= size:
			delete(o.blocks, b)
		case from+blockSize > size:
			clear(blk[size-from:])
		}
	}
}

// sync writes the overlay to the backing file and fsyncs it.
func (o *overlay) sync() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.f.Truncate(o.valid); err != nil {
		return err
	}
	for b, blk := range o.blocks {
		from := b * blockSize
		if n := min(blockSize, o.size-from); n > 0 {
			if _, err := o.f.WriteAt(blk[:n], from); err != nil {
				return err
			}
		}
	}
	if err := o.f.Truncate(o.size); err != nil {
		return err
	}
	if err := o.f.Sync(); err != nil {
		return err
	}
	clear(o.blocks)
	o.valid = o.size
	return nil
}
