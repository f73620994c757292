// Command docksim runs the real dock agent on a simulated dock (fake GPIO, cameras on
// pseudo-terminals) and drives it from a script; see simrun.RunScript for the commands.
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"dock/agent"
	"dock/agent/simrun"
	"dock/agent/version"
	"dock/uplink/central"
	"dock/uplink/wire"
)

func main() {
	dir := flag.String("dir", "build/out/docksim", "state directory")
	slots := flag.Int("slots", 4, "bays")
	dock := flag.String("dock", "dock-sim-1", "dock id")
	brokerURL := flag.String("broker", "", "MQTT broker URL (empty: embedded broker on loopback)")
	withCentral := flag.Bool("central", true, "run the central receiver in this process too")
	script := flag.String("script", "-", "script file ('-': standard input)")
	stay := flag.Bool("stay", false, "keep running after the script until a signal")
	pollMS := flag.Int("poll-ms", 1000, "how often a docked camera is read, in milliseconds")
	showVersion := flag.Bool("version", false, "print the version and exit")
	signingKey := flag.String("signing-key", "", "file holding central's Ed25519 private key (base64 seed, as for central -signing-key): the in-process central signs with it and the dock trusts its public half (empty: a new key, known only to this process; with -central=false give this or -central-key)")
	centralPub := flag.String("central-key", "", "central's Ed25519 public key (base64, a dock's central_key) for a central run elsewhere (-central=false) that signs with it; instead of -signing-key")
	flag.Parse()
	if *showVersion {
		fmt.Println("docksim", version.Version)
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var signer ed25519.PrivateKey
	if *signingKey != "" {
		var err error
		if signer, err = central.LoadSigningKey(*signingKey); err != nil {
			log.Error("signing key", "file", *signingKey, "err", err)
			os.Exit(1)
		}
	} else if !*withCentral && *centralPub == "" {
		log.Warn("-central=false without -signing-key or -central-key: the dock refuses everything the other central sends")
	}
	h, err := simrun.Start(ctx, simrun.Options{Dir: *dir, Slots: *slots, Dock: *dock, Broker: *brokerURL, NoCentral: !*withCentral, Log: log, CentralKey: signer,
		Config: func(c *agent.Config) {
			c.Poll = wire.Duration(int64(*pollMS) * 1e6)
			if *centralPub != "" {
				c.CentralKey = *centralPub // checked by Config.Check
			}
		}})
	if err != nil {
		log.Error("docksim", "err", err)
		os.Exit(1)
	}
	defer h.Close()
	var in io.Reader = os.Stdin
	if *script != "-" {
		f, err := os.Open(*script)
		if err != nil {
			log.Error("docksim", "err", err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	if err := h.RunScript(ctx, in, os.Stdout); err != nil {
		log.Error("docksim script", "err", err)
		h.Close()
		os.Exit(1)
	}
	if *stay {
		<-ctx.Done()
	}
}
