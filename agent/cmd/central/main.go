// Command central is the central office's reference receiver: it grants uploads, stores and
// verifies recordings, answers with receipts, and pushes dock configs.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"dock/agent/version"
	"dock/uplink/brokertls"
	"dock/uplink/central"
	"dock/uplink/central/fleet"
	"dock/uplink/central/notify"
	"dock/uplink/wire"
)

func main() {
	brokerURL := flag.String("broker", "tcp://127.0.0.1:1883", "MQTT broker")
	dir := flag.String("store", "central-store", "directory for received recordings")
	client := flag.String("client", "central", "MQTT client id (unique per instance)")
	share := flag.String("share", "", "shared-subscription group, for several receivers")
	user := flag.String("username", "", "MQTT username")
	pass := flag.String("password", "", "MQTT password")
	ca := flag.String("ca", "", "CA file for TLS")
	cert := flag.String("cert", "", "client certificate for TLS")
	key := flag.String("key", "", "client key for TLS")
	chunk := flag.Int("chunk", 1<<20, "granted chunk size in bytes")
	window := flag.Int("window", 16, "granted chunks in flight")
	rate := flag.Int64("rate", 0, "granted bytes per second per dock (0: no cap)")
	push := flag.String("push-config", "", "publish this config file (JSON, wire.ConfigMsg) to -dock, then keep running")
	dock := flag.String("dock", "", "dock id for -push-config")
	showVersion := flag.Bool("version", false, "print the version and exit")
	signingKey := flag.String("signing-key", "", "file holding central's Ed25519 private key (base64 seed): signs every message to a dock (grants, acks, receipts, configs, commands); docks refuse anything unsigned")
	notifications := flag.String("notifications", "", "JSON file of who hears of new faults, by webhook and e-mail, per team (see package dock/uplink/central/notify); delivery state kept in fleet.db")
	consoleAddr := flag.String("console", "", "serve the web console on this address (host:port; default off)")
	consoleCert := flag.String("console-cert", "", "TLS certificate for the console")
	consoleKey := flag.String("console-key", "", "TLS key for the console")
	consolePlain := flag.Bool("console-insecure-http", false, "serve the console without TLS on a non-loopback address (passwords and cookies in clear: only behind a TLS proxy on this host)")
	newUser := flag.String("add-user", "", "create a console user in the store's fleet database, print a one-time password, and exit")
	role := flag.String("role", "", "role of -add-user: maintenance, supervisor, approver, auditor or admin")
	genKey := flag.Bool("gen-key", false, "print a new signing key (base64 seed) and its public half for docks' central_key, and exit")
	flag.Parse()
	if *genKey {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("signing key (keep secret, for -signing-key): %s\ncentral_key (for every dock's config.json): %s\n",
			base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(pub))
		return
	}
	if *showVersion {
		fmt.Println("central", version.Version)
		return
	}
	if *newUser != "" {
		if err := addUser(*dir, *newUser, *role); err != nil {
			fmt.Fprintln(os.Stderr, "add-user:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tlsc, err := brokertls.Config(*ca, *cert, *key)
	if err != nil {
		log.Error("tls", "err", err)
		os.Exit(1)
	}
	var signer ed25519.PrivateKey
	if *signingKey != "" {
		var err error
		if signer, err = central.LoadSigningKey(*signingKey); err != nil {
			log.Error("signing key", "file", *signingKey, "err", err)
			os.Exit(1)
		}
	} else {
		log.Warn("no -signing-key: every dock refuses every message from this receiver (grants, acks, receipts, configs, commands)")
	}
	// Central's fleet state (docks, faults, configs, the evidence index, people, audit)
	// lives in the store directory's fleet.db, fed by the receiver.
	db, err := fleet.Open(*dir)
	if err != nil {
		log.Error("fleet database", "err", err)
		os.Exit(1)
	}
	defer db.Close()
	var observer central.Observer = db
	if *notifications != "" {
		n, err := startNotifications(ctx, *notifications, db, log)
		if err != nil {
			log.Error("notifications", "err", err)
			os.Exit(1)
		}
		// An alert not recorded is logged by the receiver; the dock sends it again until
		// acknowledged, and the next repeat is taken as new.
		observer = n.Observer(observer)
	}
	r, err := central.Start(ctx, central.Options{SigningKey: signer, Broker: *brokerURL, ClientID: *client, Username: *user, Password: *pass, TLS: tlsc,
		Store: central.FileStore{Dir: *dir}, Share: *share, ChunkSize: *chunk, Window: *window, RateBytes: *rate, Observer: observer}, log)
	if err != nil {
		log.Error("central", "err", err)
		os.Exit(1)
	}
	defer r.Close()
	if *push != "" {
		var c wire.ConfigMsg
		b, err := os.ReadFile(*push)
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err == nil {
			err = r.PushConfig(ctx, *dock, c)
		}
		if err != nil {
			log.Error("push config", "err", err)
			os.Exit(1)
		}
	}
	log.Info("central receiver running", "broker", *brokerURL, "store", *dir)
	if *consoleAddr != "" {
		log.Info("console", "addr", *consoleAddr, "tls", *consoleCert != "")
		if err := serveConsole(ctx, *consoleAddr, *consoleCert, *consoleKey, *consolePlain, db, r, central.FileStore{Dir: *dir}, log); err != nil {
			log.Error("console", "err", err)
			os.Exit(1)
		}
	}
	<-ctx.Done()
}

// startNotifications reads the notifications file and runs its notifier until ctx ends,
// its delivery state in the fleet database.
func startNotifications(ctx context.Context, file string, db *fleet.DB, log *slog.Logger) (*notify.Notifier, error) {
	cfg, err := notify.LoadConfig(file)
	if err != nil {
		return nil, err
	}
	st := db.Notifications()
	// A dock's faults go to the team its running config names, and to every team listing it.
	n, err := notify.New(notify.Options{Config: cfg, Store: st, TeamOf: db.DockTeam, Log: log})
	if err != nil {
		return nil, err
	}
	go n.Run(ctx)
	teams := make([]string, len(cfg.Teams))
	for i, t := range cfg.Teams {
		teams[i] = t.Name
	}
	log.Info("notifications", "file", file, "teams", teams)
	return n, nil
}
