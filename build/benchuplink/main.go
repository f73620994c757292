// Command benchuplink times the dock's upload of one recording through an MQTT broker to
// the central receiver (which fsyncs and verifies the hash), and, with -cut, how many bytes
// are sent again when the dock's connection is cut at 90 %. For build/bench-uplink.sh.
//
// With -role all (the default) dock and central run in this one process. With -role central
// and -role dock they run apart (in two network namespaces, over a shaped link): central
// writes its public key to -dir/central.pub and receives until it is stopped; the dock
// reads that key. -role pki writes a test PKI (uplink/mqtttest) for -tls to -dir.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"dock/queue"
	"dock/uplink"
	"dock/uplink/brokertls"
	"dock/uplink/central"
	"dock/uplink/mqtttest"
)

type options struct {
	role, broker, src, dir, tlsDir, centralPub, cpuprofile string
	chunk, window                                          int
	cut                                                    float64
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "all", "all (dock and central here), dock, central, pki, or offload (only spool the recording and print its spool file)")
	flag.StringVar(&o.broker, "broker", "", "MQTT broker URL (ssl:// with -tls)")
	flag.StringVar(&o.src, "src", "", "the recording")
	flag.StringVar(&o.dir, "dir", "", "work directory")
	flag.StringVar(&o.tlsDir, "tls", "", "directory of a -role pki PKI: connect with TLS as the dock and central there")
	flag.StringVar(&o.centralPub, "central-pub", "", "-role dock: central's public key file (hex)")
	flag.IntVar(&o.chunk, "chunk", 1<<20, "chunk size")
	flag.IntVar(&o.window, "window", 16, "chunks in flight")
	flag.Float64Var(&o.cut, "cut", 0, "cut the dock's connection at this fraction (0: never)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the run here")
	ips := flag.String("pki-ips", "", "-role pki: comma-separated IPs the broker's certificate covers besides 127.0.0.1")
	flag.Parse()
	var err error
	switch o.role {
	case "all", "dock":
		err = runDock(o)
	case "offload":
		err = runOffload(o)
	case "central":
		err = runCentral(o)
	case "pki":
		err = writePKI(o.dir, *ips)
	default:
		err = fmt.Errorf("role %q", o.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchuplink:", err)
		os.Exit(1)
	}
}

// fatal is a mqtttest.TB that ends the program.
type fatal struct{}

func (fatal) Helper() {}
func (fatal) Fatal(a ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"benchuplink: pki:"}, a...)...)
	os.Exit(1)
}
func (fatal) Fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "benchuplink: pki: "+f+"\n", a...)
	os.Exit(1)
}

var _ mqtttest.TB = fatal{}

// writePKI writes ca.pem, the broker's, the dock's and central's certificates and keys.
func writePKI(dir, ips string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := mqtttest.NewPKI(fatal{}, dir)
	var extra []net.IP
	for _, s := range strings.Split(ips, ",") {
		if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil {
			extra = append(extra, ip)
		}
	}
	p.Issue("broker", true, extra...)
	p.Issue("bench-dock", false)
	p.Issue("central", false) // the shipped ACL's name for central (build/mosquitto/acl)
	return nil
}

// tlsFor is the TLS configuration of identity cn in the PKI at dir, as the agent builds
// its own (uplink/brokertls); nil without -tls.
func tlsFor(dir, cn string) (*tls.Config, error) {
	if dir == "" {
		return nil, nil
	}
	return brokertls.Config(filepath.Join(dir, "ca.pem"), filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+".key"))
}

func startCentral(ctx context.Context, o options, signer ed25519.PrivateKey, log *slog.Logger) (*central.Receiver, error) {
	tc, err := tlsFor(o.tlsDir, "central")
	if err != nil {
		return nil, err
	}
	return central.Start(ctx, central.Options{Broker: o.broker, ClientID: "central", TLS: tc, Store: central.FileStore{Dir: filepath.Join(o.dir, "central")},
		ChunkSize: o.chunk, Window: o.window, SigningKey: signer}, log)
}

// runCentral receives until SIGTERM or SIGINT.
func runCentral(o options) error {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	pub, signer, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	rcv, err := startCentral(ctx, o, signer, log)
	if err != nil {
		return err
	}
	defer rcv.Close()
	tmp := filepath.Join(o.dir, "central.pub.tmp")
	if err := os.WriteFile(tmp, []byte(hex.EncodeToString(pub)), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(o.dir, "central.pub")); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// offload spools the recording, encrypted, into a fresh queue under dir, as the agent does.
func offload(ctx context.Context, o options, log *slog.Logger) (*queue.Store, queue.Recording, error) {
	q, err := queue.Open(filepath.Join(o.dir, "dock"), log)
	if err != nil {
		return nil, queue.Recording{}, err
	}
	key, err := queue.LoadKey(filepath.Join(o.dir, "spool.key"))
	if err != nil {
		q.Close()
		return nil, queue.Recording{}, err
	}
	q.Encrypt(key) // as the agent does: the upload decrypts as it reads
	f, err := os.Open(o.src)
	if err != nil {
		q.Close()
		return nil, queue.Recording{}, err
	}
	defer f.Close()
	info, _ := f.Stat()
	rec, _, err := q.Offload(ctx, queue.Recording{ID: "BENCH_upload.mp4", Name: "upload.mp4", Device: "BENCH", Size: info.Size(), Start: time.Now()}, f, queue.Event{Kind: queue.EvOffloaded})
	if err != nil {
		q.Close()
		return nil, rec, err
	}
	return q, rec, nil
}

// runOffload spools the recording and prints its spool file and the key that decrypts it.
func runOffload(o options) error {
	q, rec, err := offload(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer q.Close()
	fmt.Println(filepath.Join(q.Spool().Dir(), rec.ID+".rec"), filepath.Join(o.dir, "spool.key"))
	return nil
}

// runDock offloads the recording into a fresh queue (not timed), then times its upload
// until the dock holds central's receipt. It prints the seconds, the chunk bytes central
// received (-role all only, else 0), the recording's size and the CPU seconds this process
// spent on the upload (the dock's, and with -role all central's).
func runDock(o options) error {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	q, rec, err := offload(ctx, o, log)
	if err != nil {
		return err
	}
	defer q.Close()
	var pub ed25519.PublicKey
	var rcv *central.Receiver
	if o.role == "all" {
		var signer ed25519.PrivateKey
		if pub, signer, err = ed25519.GenerateKey(nil); err != nil {
			return err
		}
		if rcv, err = startCentral(ctx, o, signer, log); err != nil {
			return err
		}
		defer rcv.Close()
	} else {
		b, err := os.ReadFile(o.centralPub)
		if err == nil {
			pub, err = hex.DecodeString(strings.TrimSpace(string(b)))
		}
		if err != nil {
			return fmt.Errorf("central's key: %w", err)
		}
	}
	tc, err := tlsFor(o.tlsDir, "bench-dock")
	if err != nil {
		return err
	}
	session := func(ctx context.Context) (*uplink.Uplink, context.CancelFunc) {
		u, err := uplink.Dial(ctx, uplink.Options{Broker: o.broker, Dock: "bench-dock", TLS: tc, CentralKey: pub}, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchuplink: dial:", err)
			os.Exit(1)
		}
		sctx, cancel := context.WithCancel(ctx)
		go uplink.NewSender(u, q, log).Run(sctx)
		return u, cancel
	}
	if o.cpuprofile != "" {
		// The upload only: the offload above is bench-offload's business.
		pf, err := os.Create(o.cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(pf)
		}
		if err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu0 := time.Now(), cpuSeconds()
	u, stop := session(ctx)
	if o.cut > 0 && rcv != nil {
		for rcv.Progress("bench-dock", rec.ID) < int64(o.cut*float64(rec.Size)) {
			time.Sleep(2 * time.Millisecond)
		}
		stop()
		u.Close() // the connection drops; the next session resumes from central's offset
		u, stop = session(ctx)
	}
	defer stop()
	for {
		r, err := q.Get(rec.ID)
		if err != nil {
			return err
		}
		if r.State == queue.Verified || r.State == queue.Freed {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("upload did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed, cpu := time.Since(start).Seconds(), cpuSeconds()-cpu0
	u.Close()
	received := int64(0)
	if rcv != nil {
		s, ok, err := rcv.Store().Lookup(rec.ID)
		if err != nil || !ok || s.SHA256 != rec.SHA256 {
			return fmt.Errorf("central's copy does not verify: %v %v", ok, err)
		}
		received = rcv.BytesReceived()
	}
	fmt.Printf("%.3f %d %d %.3f\n", elapsed, received, rec.Size, cpu)
	return nil
}

// cpuSeconds is the CPU time (user and system) this process has used: under a load from
// other processes it varies less than the elapsed time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
