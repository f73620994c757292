package sim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"dock/hw/camlink"
)

// listPageSize is how many recordings the camera returns per list page.
const listPageSize = 50

// session is the state of one docking: whether storage has been exposed, and where.
type session struct {
	mount      string // symlink the dock reads the storage through
	exposed    bool
	identified bool // the dock has asked who the camera is (Auth comes only after)
	// exposeAfter is how long the storage takes to appear at mount once unlocked (the
	// camera's disk enumerating and being mounted); zero: at once.
	exposeAfter time.Duration

	mu    sync.Mutex // orders a late exposure against the end of the docking
	ended bool
}

// end ends the docking: the storage is gone, and a late exposure does not bring it back.
func (s *session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	_ = os.RemoveAll(s.mount)
}

// handle answers one request frame. ok is false when the camera stays silent.
func (c *Camera) handle(req camlink.Frame, s *session, now time.Time, charging bool) (reply []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Silent {
		return nil, false
	}
	if d := c.st.ReplyDelay; d > 0 {
		c.mu.Unlock()
		time.Sleep(d)
		c.mu.Lock()
	}
	if c.st.Garbage {
		return []byte("\xd0\xcc\x01\x81\x00\xff\xffnoise\x00\x13garbage"), true
	}
	resp, err := c.answerLocked(req, s, now, charging)
	code := req.Code.Reply()
	var payload []byte
	if err != nil {
		code = camlink.CodeError
		payload, _ = json.Marshal(camlink.ErrorReply{Message: err.Error()})
	} else {
		payload, _ = json.Marshal(resp)
	}
	out, err := camlink.AppendFrame(nil, camlink.Frame{Code: code, Seq: req.Seq, Payload: payload})
	if err != nil {
		return nil, false
	}
	return out, true
}

func (c *Camera) answerLocked(req camlink.Frame, s *session, now time.Time, charging bool) (any, error) {
	switch req.Code {
	case camlink.CodeIdentify:
		s.identified = true
		id := c.st.Identity
		id.Locked = c.st.LockReason != ""
		return id, nil
	case camlink.CodeBattery:
		b := camlink.Battery{
			ChargePct: int(c.st.ChargePct), TempDeciC: c.st.TempDeciC, Cycles: c.st.Cycles,
			FullMAh: c.st.FullMAh, DesignMAh: c.st.DesignMAh, Charging: charging,
			VoltageMV: 3500 + int(c.st.ChargePct*7),
		}
		return b, nil
	case camlink.CodeStorage:
		used := c.usedLocked()
		free := c.st.Capacity - used
		if free < 0 {
			free = 0
		}
		return camlink.Storage{CapacityBytes: c.st.Capacity, FreeBytes: free, BadBlocks: c.st.BadBlocks, WearPct: c.st.WearPct, Errors: c.st.Errors}, nil
	case camlink.CodeList:
		var r camlink.ListRequest
		if err := json.Unmarshal(req.Payload, &r); err != nil || r.Offset < 0 {
			return nil, fmt.Errorf("bad list request")
		}
		all := c.filesLocked()
		page := camlink.ListPage{Total: len(all), Offset: &r.Offset}
		if r.Offset < len(all) {
			end := min(r.Offset+listPageSize, len(all))
			page.Recordings = all[r.Offset:end]
		}
		return page, nil
	case camlink.CodeAuth:
		var r camlink.AuthRequest
		if err := json.Unmarshal(req.Payload, &r); err != nil {
			return nil, fmt.Errorf("bad auth request")
		}
		// A camera's password is its own (camlink.StoragePassword of its serial): a dock
		// that sends one before asking which camera it talks to is guessing, and is refused.
		if !s.identified {
			return nil, fmt.Errorf("auth before identify")
		}
		if r.Password != c.st.Password {
			return nil, fmt.Errorf("wrong password")
		}
		if !s.exposed && s.exposeAfter > 0 {
			s.exposed = true
			time.AfterFunc(s.exposeAfter, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.ended {
					return
				}
				c.mu.Lock()
				defer c.mu.Unlock()
				_ = c.exposeLocked(s.mount)
			})
		}
		if !s.exposed {
			if err := c.exposeLocked(s.mount); err != nil {
				return nil, fmt.Errorf("expose storage: %v", err)
			}
			s.exposed = true
			if c.st.GrowsDuringCopy {
				if files := c.recordingsLocked(); len(files) > 0 {
					go grow(c.path(files[0].Name))
				}
			}
		}
		return camlink.Empty{}, nil
	case camlink.CodeDelete:
		var r camlink.DeleteRequest
		if err := json.Unmarshal(req.Payload, &r); err != nil {
			return nil, fmt.Errorf("bad delete request")
		}
		if !s.exposed {
			return nil, fmt.Errorf("storage locked: authenticate first")
		}
		if _, known := c.st.Files[r.Name]; !known || camlink.CheckName(r.Name) != nil {
			return nil, fmt.Errorf("no recording %q", r.Name)
		}
		path := c.path(r.Name)
		info, err := os.Lstat(path)
		if err != nil || !info.Mode().IsRegular() {
			return nil, fmt.Errorf("no recording %q", r.Name)
		}
		if info.Size()+c.st.LieSize != r.Size {
			return nil, fmt.Errorf("size mismatch for %q: %d, not %d", r.Name, info.Size(), r.Size)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("delete %q: %v", r.Name, err)
		}
		delete(c.st.Files, r.Name)
		return camlink.Empty{}, c.saveLocked()
	case camlink.CodeSetClock:
		var r camlink.SetClockRequest
		if err := json.Unmarshal(req.Payload, &r); err != nil {
			return nil, fmt.Errorf("bad set-clock request")
		}
		// The camera reports its own clock against the dock's and then takes the dock's.
		drift := now.Add(c.st.ClockOffset).Sub(time.UnixMilli(r.UnixMilli))
		c.st.ClockOffset = time.UnixMilli(r.UnixMilli).Sub(now) // the camera now reads what the dock said
		return camlink.SetClockReply{DriftMilli: drift.Milliseconds()}, c.saveLocked()
	case camlink.CodeLock:
		var r camlink.LockRequest
		if err := json.Unmarshal(req.Payload, &r); err != nil || r.Reason == "" {
			return nil, fmt.Errorf("bad lock request")
		}
		c.st.LockReason = r.Reason
		return camlink.Empty{}, c.saveLocked()
	case camlink.CodeUnlock:
		c.st.LockReason = ""
		return camlink.Empty{}, c.saveLocked()
	}
	return nil, fmt.Errorf("unknown command %s", req.Code)
}

// exposeLocked makes the storage appear at mount: a link to the footage directory, so the
// dock sees the camera's whole tree (folders, files the camera does not list, symbolic
// links) and a deleted recording is gone from it. What a storage link does on reading
// (a rate cap, unreadable recordings, a stall) is done by the dock's opener (Dock.open).
func (c *Camera) exposeLocked(mount string) error {
	_ = os.RemoveAll(mount)
	for name, target := range c.st.Symlinks {
		if _, err := os.Lstat(c.path(name)); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(c.path(name)), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(target, c.path(name)); err != nil {
			return err
		}
	}
	return os.Symlink(c.Footage(), mount)
}

// grow appends to a file for a while, as a camera still recording into it.
func grow(path string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for i := 0; i < 100; i++ {
		_, _ = f.Write(chunk)
		time.Sleep(2 * time.Millisecond)
	}
}

// chargeStep advances the battery by dt of charging (about 1 % per simulated second of
// fast charge, so a demo sees progress).
func (c *Camera) chargeStep(dt time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.ChargePct >= 100 {
		return
	}
	c.st.ChargePct += dt.Seconds()
	if c.st.ChargePct >= 100 {
		c.st.ChargePct = 100
		c.st.Cycles++
	}
}
