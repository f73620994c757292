// Command dockctl is the maintenance tool at the dock: slots, faults (and acknowledging
// them), the queue, and verifying the ledger, through the agent's local control socket.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"dock/agent/ctlview"
	"dock/health"
	"dock/uplink/wire"
)

const usage = `usage: dockctl [-config FILE] [-socket PATH] [-json] COMMAND
commands:
  slots              bays, cameras, battery and storage
  faults             faults and where they are in their lifecycle
  ack FAULT [BY]     acknowledge a fault (maintenance saw it)
  queue              recordings waiting on the dock
  ledger-verify      check the ledger's hash chain and the head central acknowledged; names the first bad entry
`

func main() {
	config := flag.String("config", "/etc/dock-agent/config.json", "the agent's config, which names its control socket")
	sock := flag.String("socket", "", "agent control socket (default: the config's control_socket)")
	asJSON := flag.Bool("json", false, "print JSON instead of tables")
	flag.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	flag.Parse()
	if *sock == "" {
		*sock = controlSocket(*config)
	}
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", *sock)
		}}}
	if err := run(c, flag.Args(), *asJSON, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dockctl:", err)
		os.Exit(1)
	}
}

// controlSocket is the socket the agent run with the config at path listens on: its
// control_socket, else its data_dir's ctl.sock (the agent's rule, Config.ControlSocketPath),
// with the agent's default data_dir where the config says none or cannot be read.
func controlSocket(path string) string {
	c := struct {
		DataDir       string `json:"data_dir"`
		ControlSocket string `json:"control_socket"`
	}{DataDir: "/var/lib/dock-agent"}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	if c.ControlSocket != "" {
		return c.ControlSocket
	}
	return filepath.Join(c.DataDir, "ctl.sock")
}

func call(c *http.Client, method, path string, v any) ([]byte, error) {
	req, _ := http.NewRequest(method, "http://agent"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent not reachable: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", strings.TrimSpace(string(b)))
	}
	return b, json.Unmarshal(b, v)
}

func run(c *http.Client, args []string, asJSON bool, out io.Writer) error {
	var raw []byte
	var err error
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	switch args[0] {
	case "slots":
		var v []wire.SlotTelemetry
		if raw, err = call(c, "GET", "/v1/slots", &v); err != nil || asJSON {
			break
		}
		fmt.Fprintln(tw, "bay\tstate\tdevice\tofficer\tcharge\thealth\ttemp\tstorage free\tfaults")
		for _, s := range v {
			charge, hp, temp, free := "-", "-", "-", "-"
			if b := s.Battery; b != nil {
				charge, hp, temp = fmt.Sprintf("%d%%", b.ChargePct), fmt.Sprintf("%d%%", b.HealthPct), fmt.Sprintf("%.1fC", b.TempC)
			}
			if st := s.Storage; st != nil {
				free = fmt.Sprintf("%.1f GB", float64(st.Free)/1e9)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Slot, s.State, s.Device, s.Officer, charge, hp, temp, free, strings.Join(s.Faults, ","))
		}
		return nil
	case "faults":
		var v []health.Fault
		if raw, err = call(c, "GET", "/v1/faults", &v); err != nil || asJSON {
			break
		}
		fmt.Fprintln(tw, "fault\tstate\traised\talerts\tdetail")
		for _, f := range v {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", f.ID, f.State, f.RaisedAt.Format(time.RFC3339), f.Alerts, f.Detail)
		}
		return nil
	case "ack":
		if len(args) < 2 {
			return fmt.Errorf("ack needs a fault id")
		}
		by := "maintenance"
		if len(args) > 2 {
			by = args[2]
		}
		var v map[string]string
		if raw, err = call(c, "POST", "/v1/faults/ack?id="+url.QueryEscape(args[1])+"&by="+url.QueryEscape(by), &v); err != nil || asJSON {
			break
		}
		fmt.Fprintf(tw, "acknowledged %s\n", args[1])
		return nil
	case "queue":
		var v ctlview.QueueView
		if raw, err = call(c, "GET", "/v1/queue", &v); err != nil || asJSON {
			break
		}
		for st, n := range v.Stats.Count {
			fmt.Fprintf(tw, "%s\t%d\t%.1f MB\n", st, n, float64(v.Stats.Bytes[st])/1e6)
		}
		if !v.Stats.Oldest.IsZero() {
			fmt.Fprintf(tw, "oldest waiting\t%s\n", v.Stats.Oldest.Format(time.RFC3339))
		}
		for _, r := range v.Pending {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d bytes\t%s\n", r.ID, r.Class, r.Hold, r.Size, r.State)
		}
		return nil
	case "ledger-verify":
		var v ctlview.LedgerCheck
		if raw, err = call(c, "GET", "/v1/ledger/verify", &v); err != nil || asJSON {
			break
		}
		if v.OK && v.AnchorSeq == 0 {
			fmt.Fprintf(tw, "ledger OK: %d entries, hash chain intact; no head acknowledged by central yet (a rewrite recomputing the chain would pass)\n", v.Entries)
			return nil
		}
		if v.OK {
			fmt.Fprintf(tw, "ledger OK: %d entries, hash chain intact, entry %d matches the head central acknowledged (%.16s…)\n", v.Entries, v.AnchorSeq, v.AnchorHash)
			return nil
		}
		fmt.Fprintf(tw, "ledger BROKEN at entry %d: %s\n", v.BadSeq, v.Reason)
		return fmt.Errorf("ledger broken")
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
	if err != nil {
		return err
	}
	_, err = out.Write(append(raw, '\n'))
	return err
}
