// Command dockagent is the dock daemon for a real board: GPIO through periph.io's host
// drivers, cameras on serial ports, footage into the spool and up to central over MQTT.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"periph.io/x/host/v3"

	"dock/agent"
	"dock/agent/version"
	"dock/board"
	"dock/queue"
	"dock/uplink"
	"dock/uplink/broker"
	"dock/uplink/brokertls"
)

func main() {
	configPath := flag.String("config", "/etc/dock-agent/config.json", "configuration file")
	showVersion := flag.Bool("version", false, "print the version and exit")
	initKey := flag.String("init-key", "", "create the spool encryption key at this path if it does not exist, and exit (package install)")
	embedded := flag.String("embedded-broker", "", "start an embedded MQTT broker on this loopback address (e.g. 127.0.0.1:1883) and use it")
	flag.Parse()
	if *showVersion {
		fmt.Printf("dockagent %s %s/%s\n", version.Version, runtime.GOOS, runtime.GOARCH)
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if *initKey != "" {
		if _, err := queue.LoadKey(*initKey); err != nil {
			log.Error("spool key", "err", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*configPath, *embedded, log); err != nil {
		log.Error("dock agent stopped", "err", err)
		os.Exit(1)
	}
}

func run(configPath, embedded string, log *slog.Logger) error {
	cfg, err := agent.LoadConfig(configPath)
	if err != nil {
		return err
	}
	b, err := board.Lookup(cfg.Board)
	if err != nil {
		return err
	}
	// On a machine without GPIO this succeeds with no pins; the board lookup then names
	// the missing ones.
	if _, err := host.Init(); err != nil {
		return fmt.Errorf("periph host init: %w", err)
	}
	if err := agent.CheckBoard(b); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if embedded != "" {
		br, err := broker.Start(embedded, log)
		if err != nil {
			return err
		}
		defer br.Close()
		cfg.Broker = br.URL()
	}
	store, err := agent.OpenStore(cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	tlsc, err := brokertls.Config(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return err
	}
	up, err := uplink.Dial(ctx, uplink.Options{Broker: cfg.Broker, Dock: cfg.Dock, Username: cfg.Username, Password: cfg.Password, TLS: tlsc, Version: version.Version, CentralKey: cfg.CentralPublicKey()}, log.With("component", "uplink"))
	if err != nil {
		return err
	}
	defer up.Close()
	a, err := agent.New(cfg, b, store, up, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
