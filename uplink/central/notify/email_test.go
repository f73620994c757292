package notify_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dock/uplink/central/notify"
	"dock/uplink/central/notify/notifytest"
)

// flakyProxy forwards loopback TCP to addr, except that it drops the first drop
// connections at once (the mail server unreachable for a while).
func flakyProxy(t *testing.T, addr string, drop int32) (string, *atomic.Int32) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if conns.Add(1) <= drop {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	return l.Addr().String(), &conns
}

// Ten faults of one dock make one e-mail, through a real SMTP server (STARTTLS under the
// test CA, AUTH), sent again after the server could not be reached; what a dock wrote
// reaches no header.
func TestEmailDigestThroughMailpit(t *testing.T) {
	mp := notifytest.StartMailpit(t)
	addr, conns := flakyProxy(t, mp.SMTPAddr, 2)
	cfg := fastConfig(notify.Team{Name: "north", Docks: []string{"*"},
		Email: &notify.Email{From: "Central office <central@dock.test>", To: []string{"north-maintenance@dock.test", "Lead <lead@dock.test>"}}})
	cfg.SMTP = &notify.SMTP{Addr: addr, Security: "starttls", CAFile: mp.CAFile, Username: mp.User, Password: mp.Password, Hello: "central.dock.test"}
	cfg.ConsoleURL = "https://central.dock.test/"
	// The proxy's address is 127.0.0.1 like mailpit's, so the certificate's name holds.
	store := notify.NewMemStore()
	n, _ := start(t, notify.Options{Config: cfg, Store: store})
	raised := time.Now().UTC().Truncate(time.Second)
	for i := 0; i < 10; i++ {
		a := alert("CAM-"+string(rune('A'+i)), "battery-worn", raised)
		if i == 3 {
			a.Detail = "worn\r\nBcc: thief@evil.test\r\nX-Injected: 1"
			a.Device = "CAM-D\r\nSubject: forged"
			a.ID = a.Device + "/" + a.Code
		}
		for rep := 0; rep < 2; rep++ {
			if err := n.Observe("dock-1", a); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := n.Observe("dock-2", alert("CAM-Z", "storage-worn", raised)); err != nil {
		t.Fatal(err)
	}
	ms := mp.WaitMessages(t, 2, 20*time.Second)
	waitFor(t, 5*time.Second, "no delivery open", func() bool { o, _ := store.Open(); return len(o) == 0 })
	if got := conns.Load(); got < 4 {
		t.Errorf("%d connections to the server, want the 2 dropped and then one per message", got)
	}
	if len(ms) != 2 {
		t.Fatalf("%d messages, want one per dock: %+v", len(ms), ms)
	}
	var one, other notifytest.Mail
	for _, m := range ms {
		if strings.Contains(m.Subject, "dock-1") {
			one = m
		} else {
			other = m
		}
	}
	if one.Subject != "dock dock-1: 10 new faults" {
		t.Errorf("subject %q", one.Subject)
	}
	if other.Subject != "dock dock-2: fault storage-worn on CAM-Z" {
		t.Errorf("subject %q", other.Subject)
	}
	if one.From.Address != "central@dock.test" || len(one.To) != 2 || one.To[0].Address != "north-maintenance@dock.test" || one.To[1].Address != "lead@dock.test" {
		t.Errorf("from %+v to %+v", one.From, one.To)
	}
	for i := 0; i < 10; i++ {
		if dev := "CAM-" + string(rune('A'+i)); !strings.Contains(one.Text, dev) {
			t.Errorf("the digest does not name %s:\n%s", dev, one.Text)
		}
	}
	if strings.Count(one.Text, "- battery-worn:") != 10 || !strings.Contains(one.Text, "https://central.dock.test/faults?dock=dock-1") {
		t.Errorf("body:\n%s", one.Text)
	}
	head, _, _ := strings.Cut(one.Raw, "\r\n\r\n")
	for _, forged := range []string{"\nBcc:", "\nX-Injected:", "\nSubject: forged"} {
		if strings.Contains(head, forged) {
			t.Errorf("a dock's text made a header %q:\n%s", forged, head)
		}
	}
	if !strings.Contains(head, "Message-ID: <d") || !strings.Contains(head, "X-Dock-Delivery: d") {
		t.Errorf("no delivery id in the headers:\n%s", head)
	}
}

// savedStore records every outcome saved.
type savedStore struct {
	*notify.MemStore
	mu    sync.Mutex
	saved []notify.Delivery
}

func (s *savedStore) Save(d notify.Delivery) error {
	s.mu.Lock()
	s.saved = append(s.saved, d)
	s.mu.Unlock()
	return s.MemStore.Save(d)
}

func (s *savedStore) outcomes() []notify.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notify.Delivery(nil), s.saved...)
}

// The e-mail security modes against mailpit: implicit TLS delivers; STARTTLS to a server
// that speaks TLS at once fails and is tried again; a wrong password is refused for good
// (SMTP 535) and given up after one attempt.
func TestEmailSecurityModes(t *testing.T) {
	starttls := notifytest.StartMailpit(t)
	implicit := notifytest.StartMailpit(t, notifytest.ImplicitTLS)
	for _, tc := range []struct {
		name     string
		mp       *notifytest.Mailpit
		security string
		password string
		want     []notify.DeliveryState // the first outcomes saved
	}{
		{"implicit tls", implicit, "tls", "", []notify.DeliveryState{notify.Sent}},
		{"starttls to an implicit-tls server", implicit, "starttls", "", []notify.DeliveryState{notify.Open, notify.Open}},
		{"wrong password", starttls, "starttls", "not-the-password", []notify.DeliveryState{notify.GivenUp}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig(notify.Team{Name: "north", Docks: []string{"*"}, Email: &notify.Email{From: "central@dock.test", To: []string{"north@dock.test"}}})
			pass := tc.mp.Password
			if tc.password != "" {
				pass = tc.password
			}
			cfg.SMTP = &notify.SMTP{Addr: tc.mp.SMTPAddr, Security: tc.security, CAFile: tc.mp.CAFile, Username: tc.mp.User, Password: pass,
				Timeout: notify.Duration(time.Second)} // a server that never greets fails the attempt within it
			store := &savedStore{MemStore: notify.NewMemStore()}
			n, stop := start(t, notify.Options{Config: cfg, Store: store})
			if err := n.Observe("dock-1", alert("CAM-1", "battery-worn", time.Now())); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the outcomes", func() bool { return len(store.outcomes()) >= len(tc.want) })
			stop()
			got := store.outcomes()
			for i, want := range tc.want {
				if got[i].State != want {
					t.Fatalf("outcome %d: %s (%s), want %s", i+1, got[i].State, got[i].LastError, want)
				}
			}
			if last := got[len(got)-1]; last.State != notify.Open && len(got) != len(tc.want) {
				t.Fatalf("%d outcomes after a final one", len(got))
			}
		})
	}
}
