package central

import (
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"dock/queue/durable"
	"dock/uplink/wire"
)

// Begin implements Storage. For a recording the dock already filed it returns a
// *FiledError with the record, having completed a filing a crash interrupted.
func (f FileStore) Begin(dock, transfer string, meta wire.RecordingMeta, size int64, sum string) (Upload, error) {
	if size < 0 {
		return Upload{}, fmt.Errorf("begin %s: negative size", quoteShort(meta.ID))
	}
	// The device names the directory it is filed in: refused now, not at the end.
	if err := errors.Join(safe(dock), safe(meta.ID), safe(meta.Device)); err != nil {
		return Upload{}, fmt.Errorf("begin: %w", err)
	}
	u, err := f.lock(dock, meta.ID, true)
	if err != nil {
		return Upload{}, err
	}
	defer u.close()
	if s, ok, err := f.Filed(dock, meta.ID); err != nil {
		return Upload{}, err
	} else if ok {
		// Filed already: what is here is a leftover of its upload, or of a begin that
		// raced with its end.
		if err := u.discard(); err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		return Upload{}, &FiledError{Stored: s, Other: filedAs(s, size, sum) != nil}
	}
	if u.st.Filing != nil {
		// Verified, and filing when central stopped: file it, whatever this begin says.
		s, err := f.file(dock, u)
		if err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		return Upload{}, &FiledError{Stored: s, Other: filedAs(s, size, sum) != nil}
	}
	if u.st.Hash == nil || u.st.Size != size || u.st.Claimed != sum {
		// New, or announced otherwise than before: start from nothing, in a new part. The
		// old one is unlinked, not truncated: a name is all this takes away.
		if err := os.Remove(u.part); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		// The part exists from the start, empty: a recording of 0 bytes gets no chunk.
		part, err := os.OpenFile(u.part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		if err := part.Close(); err != nil {
			return Upload{}, fmt.Errorf("begin %s: %w", meta.ID, err)
		}
		h := emptyHash()
		u.st = uploadState{Meta: meta, Size: size, Claimed: sum, Hash: h, Durable: checkpoint{Hash: h}}
		crashAt("begun, state not saved")
	}
	u.st.Transfer = transfer
	if err := u.save(false); err != nil {
		return Upload{}, err
	}
	return u.upload(), nil
}

// Held implements Storage.
func (f FileStore) Held(dock, id string) (Upload, bool, error) {
	u, err := f.lock(dock, id, false)
	if errors.Is(err, ErrNotBegun) {
		return Upload{}, false, nil
	}
	if err != nil {
		return Upload{}, false, err
	}
	defer u.close()
	return u.upload(), true, nil
}

// Write implements Storage.
func (f FileStore) Write(dock, id string, off int64, data []byte) (Upload, error) {
	u, err := f.lock(dock, id, false)
	if errors.Is(err, ErrNotBegun) {
		// A late repeat of a chunk of a recording already verified is answered as complete.
		if s, ok, lerr := f.Filed(dock, id); lerr == nil && ok {
			return Upload{Size: s.Size, Held: s.Size}, nil
		}
	}
	if err != nil {
		return Upload{}, err
	}
	defer u.close()
	if u.st.Filing != nil {
		return u.upload(), nil // verified: every byte is held
	}
	// Compared without adding first: off + len can wrap past the largest int64.
	if off < 0 || off > u.st.Size || int64(len(data)) > u.st.Size-off {
		return Upload{}, fmt.Errorf("chunk of %d bytes at %d outside the announced size %d of %s", len(data), off, u.st.Size, id)
	}
	end := off + int64(len(data))
	if end <= u.st.Held || covered(u.st.Ahead, off, end) {
		return u.upload(), nil // a repeat
	}
	if off < u.st.Held {
		// Never rewrite bytes already hashed.
		data, off = data[u.st.Held-off:], u.st.Held
	}
	if off > u.st.Held && len(u.st.Ahead) >= maxAhead && !touches(u.st.Ahead, off, end) {
		return u.upload(), nil // too scattered: the dock sends it again after the gaps
	}
	part, err := os.OpenFile(u.part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Upload{}, err
	}
	defer part.Close()
	if _, err := part.WriteAt(data, off); err != nil {
		return Upload{}, fmt.Errorf("store %s at %d: %w", id, off, err)
	}
	crashAt("chunk stored, state not saved")
	// Start the disk on what has piled up, without waiting: the fsync before the receipt
	// then finds little left to write.
	durable.WriteBehind(part, off, end)
	u.st.Ahead = addRange(u.st.Ahead, off, end)
	if len(u.st.Ahead) > 0 && u.st.Ahead[0][0] <= u.st.Held {
		// Hash what just became contiguous: this chunk from memory, the rest (written by
		// other instances) from the part file.
		h, err := loadHash(u.st.Hash)
		if err != nil {
			return Upload{}, err
		}
		to := u.st.Ahead[0][1]
		for pos := u.st.Held; pos < to; {
			if pos >= off && pos < end {
				n := min(to, end) - pos
				h.Write(data[pos-off : pos-off+n])
				pos += n
				continue
			}
			next := to
			if off > pos && off < to {
				next = off
			}
			if _, err := io.Copy(h, io.NewSectionReader(part, pos, next-pos)); err != nil {
				return Upload{}, fmt.Errorf("hash %s at %d: %w", id, pos, err)
			}
			pos = next
		}
		u.st.Held, u.st.Ahead = to, u.st.Ahead[1:]
		if u.st.Hash, err = h.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
			return Upload{}, err
		}
		if u.st.Held/durableStep > u.durable().Held/durableStep {
			// A checkpoint: what is held so far survives a power cut from here on.
			if err := unix.Fdatasync(int(part.Fd())); err != nil {
				return Upload{}, fmt.Errorf("fsync %s: %w", id, err)
			}
			u.st.Durable = checkpoint{Held: u.st.Held, Hash: u.st.Hash}
		}
	}
	if err := u.save(false); err != nil {
		return Upload{}, err
	}
	return u.upload(), nil
}

// covered reports whether [from, to) lies inside one of the ranges.
func covered(rs [][2]int64, from, to int64) bool {
	for _, r := range rs {
		if r[0] <= from && to <= r[1] {
			return true
		}
	}
	return false
}

// touches reports whether [from, to) overlaps or adjoins one of the ranges.
func touches(rs [][2]int64, from, to int64) bool {
	for _, r := range rs {
		if from <= r[1] && r[0] <= to {
			return true
		}
	}
	return false
}

// addRange adds [from, to) to sorted disjoint ranges, merging what touches.
func addRange(rs [][2]int64, from, to int64) [][2]int64 {
	rs = append(rs, [2]int64{from, to})
	slices.SortFunc(rs, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r[0] <= last[1] {
			last[1] = max(last[1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}
