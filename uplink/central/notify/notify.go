package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"dock/uplink/wire"
)

// Options configure a Notifier.
type Options struct {
	Config Config
	Store  Store
	// TeamOf names the team a dock serves (the team of the config it runs: the fleet's
	// DockTeam), "" if none is known; nil: only the teams' dock lists count. On an error
	// the dock lists alone count, and it is logged.
	TeamOf func(dock string) (string, error)
	Log    *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// HTTP posts webhooks (one that follows no redirect if nil).
	HTTP *http.Client
}

// Notifier turns faults into deliveries and delivers them (see the package doc).
type Notifier struct {
	o     Options
	c     Config
	mail  *mailer
	teams map[string]Team
	wake  chan struct{}
	now   func() time.Time
	log   *slog.Logger
}

// maxInFlight bounds the attempts made at once.
const maxInFlight = 8

// New checks o and returns a Notifier; Run starts it.
func New(o Options) (*Notifier, error) {
	if o.Store == nil {
		return nil, errors.New("notify: no store")
	}
	c := o.Config.withDefaults()
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	n := &Notifier{o: o, c: c, teams: map[string]Team{}, wake: make(chan struct{}, 1), now: o.Now, log: o.Log}
	if n.now == nil {
		n.now = time.Now
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.o.HTTP == nil {
		n.o.HTTP = webhookClient()
	}
	if c.SMTP != nil {
		m, err := newMailer(c.SMTP)
		if err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		n.mail = m
	}
	for _, t := range c.Teams {
		n.teams[t.Name] = t
	}
	return n, nil
}

// Observe takes an alert a dock sent. A fault already known (a repeat) changes nothing;
// a new one is recorded and goes out after the gathering window. Only alerts of faults
// still waiting for maintenance (raised or alerted) count. It returns once the fault is
// durable in the store.
func (n *Notifier) Observe(dock string, a wire.AlertMsg) error {
	if a.State != "raised" && a.State != "alerted" {
		return nil
	}
	f := Fault{Dock: dock, ID: a.ID, Device: a.Device, Slot: a.Slot, Code: a.Code, Detail: a.Detail, RaisedAt: a.RaisedAt, Seen: n.now()}
	added, err := n.o.Store.AddFault(f)
	if err != nil {
		return fmt.Errorf("notify: keep fault %s: %w", f.Key(), err)
	}
	if added {
		n.log.Info("notify: new fault", "dock", dock, "fault", a.ID, "raised_at", a.RaisedAt)
		n.poke()
	}
	return nil
}

func (n *Notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// teamsOf lists the teams hearing of dock's faults, by name.
func (n *Notifier) teamsOf(dock string) []Team {
	own := ""
	if n.o.TeamOf != nil {
		var err error
		if own, err = n.o.TeamOf(dock); err != nil {
			own = ""
			n.log.Warn("notify: the dock's team is unknown: only the teams listing it hear of its faults", "dock", dock, "err", err)
		}
	}
	var out []Team
	for _, t := range n.c.Teams {
		if t.Name == own || slices.Contains(t.Docks, dock) || slices.Contains(t.Docks, "*") {
			out = append(out, t)
		}
	}
	return out
}

// result is the outcome of one attempt.
type result struct {
	d   Delivery
	err error
}

// Run gathers and delivers until ctx ends, then waits for the attempts under way.
func (n *Notifier) Run(ctx context.Context) {
	inflight := map[string]bool{}
	unsaved := map[string]time.Time{} // deliveries whose outcome the store refused: not before
	results := make(chan result)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextPrune time.Time
	for {
		now := n.now()
		if !now.Before(nextPrune) {
			if err := n.o.Store.Prune(now.Add(-time.Duration(n.c.Remember))); err != nil {
				n.log.Error("notify: pruning the store", "err", err)
			}
			nextPrune = now.Add(time.Hour)
		}
		next := nextPrune
		if at, err := n.gather(now); err != nil {
			n.log.Error("notify: gathering faults, trying again in a second", "err", err)
			next = now.Add(time.Second)
		} else if !at.IsZero() && at.Before(next) {
			next = at
		}
		open, err := n.o.Store.Open()
		if err != nil {
			n.log.Error("notify: reading deliveries, trying again in a second", "err", err)
			next = now.Add(time.Second)
		}
		for _, d := range open {
			if inflight[d.ID] {
				continue
			}
			at := d.Next
			if u, ok := unsaved[d.ID]; ok && u.After(at) {
				at = u
			}
			if at.After(now) || len(inflight) >= maxInFlight {
				if at.Before(next) {
					next = at
				}
				continue
			}
			delete(unsaved, d.ID)
			inflight[d.ID] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := n.attempt(ctx, d)
				select {
				case results <- result{d, err}:
				case <-ctx.Done():
				}
			}()
		}
		wait := next.Sub(n.now())
		if wait < 0 {
			wait = 0
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-timer.C:
		case r := <-results:
			delete(inflight, r.d.ID)
			if d, err := n.settle(r.d, r.err); err != nil {
				// The store still holds the delivery as before: it is tried again (sent
				// twice if it was taken, under the same id), not sooner than settled.
				n.log.Error("notify: recording a delivery's outcome", "delivery", d.ID, "err", err)
				at := n.now().Add(time.Duration(n.c.Retry.First))
				if d.Next.After(at) {
					at = d.Next
				}
				unsaved[d.ID] = at
			}
		}
	}
}

// gather turns the pending faults of each dock whose window is over into deliveries,
// and returns when the next window ends (zero: none pending).
func (n *Notifier) gather(now time.Time) (time.Time, error) {
	pending, err := n.o.Store.Pending()
	if err != nil {
		return time.Time{}, err
	}
	byDock := map[string][]Fault{}
	var docks []string
	for _, f := range pending {
		if byDock[f.Dock] == nil {
			docks = append(docks, f.Dock)
		}
		byDock[f.Dock] = append(byDock[f.Dock], f)
	}
	var next time.Time
	var errs []error
	for _, dock := range docks {
		fs := byDock[dock]
		due := fs[0].Seen.Add(time.Duration(n.c.Gather)) // oldest first
		if due.After(now) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		// At most MaxDigest faults a message: a dock raising hundreds (or forging them)
		// sends several messages, none too long to read or to take.
		for len(fs) > 0 {
			part := fs[:min(len(fs), MaxDigest)]
			fs = fs[len(part):]
			if err := n.gatherDigest(dock, part, now); err != nil {
				errs = append(errs, fmt.Errorf("dock %s: %w", dock, err))
				break
			}
		}
	}
	return next, errors.Join(errs...)
}

// MaxDigest is the most faults one message carries.
const MaxDigest = 50

// gatherDigest makes the deliveries of one digest of a dock's faults, one per team and
// channel, and records them with the faults gathered, in one step.
func (n *Notifier) gatherDigest(dock string, fs []Fault, now time.Time) error {
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.Key()
	}
	var ds []Delivery
	for _, t := range n.teamsOf(dock) {
		for _, ch := range []Channel{ChannelWebhook, ChannelEmail} {
			if ch == ChannelWebhook && t.Webhook == nil || ch == ChannelEmail && t.Email == nil {
				continue
			}
			ds = append(ds, Delivery{ID: newID(now), Team: t.Name, Channel: ch, Dock: dock, Faults: fs, Created: now, State: Open, Next: now})
		}
	}
	if len(ds) == 0 {
		n.log.Warn("notify: no team hears of this dock's faults: none sent", "dock", dock, "faults", len(fs))
	}
	if err := n.o.Store.Gather(keys, ds); err != nil {
		return err
	}
	for _, d := range ds {
		n.log.Info("notify: digest gathered", "dock", dock, "team", d.Team, "channel", d.Channel, "delivery", d.ID, "faults", len(fs))
	}
	return nil
}

// newID is a delivery id: its time and 8 random bytes.
func newID(now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("d%s-%s", now.UTC().Format("20060102T150405"), hex.EncodeToString(b[:]))
}

// attempt makes one attempt at d.
func (n *Notifier) attempt(ctx context.Context, d Delivery) error {
	t, ok := n.teams[d.Team]
	if !ok {
		return &PermanentError{fmt.Errorf("team %q is no longer configured", d.Team)}
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	switch d.Channel {
	case ChannelWebhook:
		if t.Webhook == nil {
			return &PermanentError{fmt.Errorf("team %q no longer has a webhook", d.Team)}
		}
		m := Message{Delivery: d.ID, Team: d.Team, Dock: d.Dock, Faults: d.Faults, Created: d.Created, Console: n.consoleLink(d.Dock)}
		return postWebhook(ctx, n.o.HTTP, t.Webhook, m, n.now())
	case ChannelEmail:
		if t.Email == nil || n.mail == nil {
			return &PermanentError{fmt.Errorf("team %q no longer has e-mail", d.Team)}
		}
		return n.mail.send(ctx, t.Email.From, t.Email.To, composeEmail(d, t.Email, n.consoleLink(d.Dock), n.now()))
	}
	return &PermanentError{fmt.Errorf("unknown channel %q", d.Channel)}
}

// consoleLink is the console's faults inbox for a dock, "" without console_url.
func (n *Notifier) consoleLink(dock string) string {
	if n.c.ConsoleURL == "" {
		return ""
	}
	u, err := url.Parse(n.c.ConsoleURL)
	if err != nil {
		return ""
	}
	u = u.JoinPath("faults")
	u.RawQuery = url.Values{"dock": {dock}}.Encode()
	return u.String()
}

// settle records an attempt's outcome: sent, given up, or the time of the next attempt.
func (n *Notifier) settle(d Delivery, err error) (Delivery, error) {
	now := n.now()
	d.Attempts++
	log := n.log.With("dock", d.Dock, "team", d.Team, "channel", d.Channel, "delivery", d.ID, "faults", len(d.Faults), "attempts", d.Attempts)
	var perm *PermanentError
	switch {
	case err == nil:
		d.State, d.Done, d.LastError = Sent, now, ""
		log.Info("notify: delivered")
	case errors.As(err, &perm) || now.Sub(d.Created) >= time.Duration(n.c.Retry.GiveUp):
		d.State, d.Done, d.LastError = GivenUp, now, err.Error()
		log.Error("notify: delivery given up: maintenance was not told of these faults by this channel", "err", err, "since", d.Created)
	default:
		d.LastError = err.Error()
		d.Next = now.Add(n.backoff(d.Attempts))
		log.Warn("notify: delivery failed, trying again", "err", err, "next", d.Next)
	}
	return d, n.o.Store.Save(d)
}

// backoff is the wait after the attempts-th failure: First doubled each time, at most Max.
func (n *Notifier) backoff(attempts int) time.Duration {
	w := time.Duration(n.c.Retry.First)
	for i := 1; i < attempts && w < time.Duration(n.c.Retry.Max); i++ {
		w *= 2
	}
	return min(w, time.Duration(n.c.Retry.Max))
}
