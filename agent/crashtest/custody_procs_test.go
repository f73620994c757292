package crashtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The custody test's processes: docksim (the real agent on the simulated dock) driven
// through its script on standard input, and central, the reference receiver, as a program
// of its own so that it can be killed too.

func hashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// proc is a program the test started, with its log appended to a file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // once exited
	killed bool
}

func startProc(name, logPath string, prep func(*exec.Cmd) error, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== %s started %s\n", name, time.Now().Format(time.StampMilli))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	orphanProof(cmd)
	if prep != nil {
		if err := prep(cmd); err != nil {
			logf.Close()
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(logf, "=== %s exited %s: %v\n", name, time.Now().Format(time.StampMilli), p.err)
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	if p == nil {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop asks the process to end (SIGTERM) and waits; it reports false, and kills it, if it
// has not ended within 10 s.
func (p *proc) stop() bool {
	if p == nil {
		return true
	}
	p.killed = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(10 * time.Second):
		p.kill()
		return false
	}
}

// stop ends docksim cleanly: its script ends (standard input closed; docksim does not
// return from reading it on SIGTERM), then SIGTERM.
func (d *dockProc) stop() bool {
	_ = d.in.Close()
	return d.proc.stop()
}

// died reports whether the process ended without the test ending it.
func (p *proc) died() bool {
	if p == nil || p.killed {
		return false
	}
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// dockProc is a running docksim, reading its script from a pipe.
type dockProc struct {
	*proc
	in   io.WriteCloser
	mu   sync.Mutex
	said chan string // docksim's standard output, line by line
}

func startDock(bin, dir, brokerURL, logPath string, extra ...string) (*dockProc, error) {
	d := &dockProc{said: make(chan string, 256)}
	var out io.Reader
	prep := func(cmd *exec.Cmd) (err error) {
		cmd.Stdout = nil
		if d.in, err = cmd.StdinPipe(); err != nil {
			return err
		}
		out, err = cmd.StdoutPipe()
		return err
	}
	args := append([]string{"-dir", dir, "-broker", brokerURL, "-central=false",
		"-script", "-", "-stay", "-slots", "4", "-poll-ms", "300"}, extra...)
	p, err := startProc("docksim", logPath, prep, bin, args...)
	if err != nil {
		return nil, err
	}
	d.proc = p
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case d.said <- sc.Text():
			default: // nobody listens for that line
			}
		}
		close(d.said)
	}()
	return d, nil
}

// send writes script lines to docksim.
func (d *dockProc) send(lines ...string) error {
	_, err := io.WriteString(d.in, strings.Join(lines, "\n")+"\n")
	if err != nil {
		return fmt.Errorf("docksim script: %w", err)
	}
	return nil
}

// sync returns once docksim has carried out every line sent before: it answers a camera
// line, and a camera of no recordings is the marker.
func (d *dockProc) sync(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for drained := false; !drained; {
		select {
		case <-d.said:
		default:
			drained = true
		}
	}
	if err := d.send("camera SYNC recordings=0"); err != nil {
		return err
	}
	for {
		select {
		case l, ok := <-d.said:
			if !ok {
				return fmt.Errorf("docksim exited before the sync marker")
			}
			if strings.HasPrefix(l, "camera SYNC:") {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("docksim did not answer the sync marker: %w", ctx.Err())
		}
	}
}
