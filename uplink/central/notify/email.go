package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// mailer sends e-mail through one submission server.
type mailer struct {
	s     *SMTP
	roots *x509.CertPool // nil: the system's
}

func newMailer(s *SMTP) (*mailer, error) {
	m := &mailer{s: s}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("smtp ca_file: %w", err)
		}
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("smtp ca_file %s: no PEM certificate", s.CAFile)
		}
	}
	return m, nil
}

// send makes one attempt to hand msg to the server for every recipient.
func (m *mailer) send(ctx context.Context, from string, to []string, msg []byte) error {
	host, _, err := net.SplitHostPort(m.s.Addr)
	if err != nil {
		return &PermanentError{err}
	}
	tlsc := &tls.Config{ServerName: host, RootCAs: m.roots, MinVersion: tls.VersionTLS12}
	limit := time.Duration(m.s.Timeout)
	if limit <= 0 {
		limit = time.Minute
	}
	d := net.Dialer{Timeout: min(limit, 15*time.Second)}
	var conn net.Conn
	if m.s.Security == "tls" {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: tlsc}).DialContext(ctx, "tcp", m.s.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", m.s.Addr)
	}
	if err != nil {
		return fmt.Errorf("smtp %s: %w", m.s.Addr, err)
	}
	deadline := time.Now().Add(limit)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp %s: %w", m.s.Addr, classify(err))
	}
	defer c.Close()
	hello := m.s.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return fmt.Errorf("smtp %s hello: %w", m.s.Addr, classify(err))
	}
	if m.s.Security == "" || m.s.Security == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return &PermanentError{fmt.Errorf("smtp %s offers no STARTTLS (security none is for loopback only)", m.s.Addr)}
		}
		if err := c.StartTLS(tlsc); err != nil {
			return fmt.Errorf("smtp %s starttls: %w", m.s.Addr, classify(err))
		}
	}
	if m.s.Username != "" {
		// PlainAuth itself refuses to send the password without TLS, except to localhost.
		if err := c.Auth(smtp.PlainAuth("", m.s.Username, m.s.Password, host)); err != nil {
			return fmt.Errorf("smtp %s auth: %w", m.s.Addr, classify(err))
		}
	}
	if err := c.Mail(addrOf(from)); err != nil {
		return fmt.Errorf("smtp %s mail from: %w", m.s.Addr, classify(err))
	}
	for _, rcpt := range to {
		if err := c.Rcpt(addrOf(rcpt)); err != nil {
			return fmt.Errorf("smtp %s rcpt %s: %w", m.s.Addr, rcpt, classify(err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s data: %w", m.s.Addr, classify(err))
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp %s data: %w", m.s.Addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s data: %w", m.s.Addr, classify(err))
	}
	_ = c.Quit() // taken already: a failing QUIT changes nothing
	return nil
}

// classify marks an SMTP 5xx reply permanent; 4xx and broken connections are transient.
func classify(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return &PermanentError{err}
	}
	return err
}

// addrOf is the bare address of a checked address ("Name <a@b>" gives "a@b").
func addrOf(s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return s
	}
	return a.Address
}

// composeEmail writes d as a plain-text RFC 5322 message. Everything a dock sent is in the
// quoted-printable body or, in the subject, Q-encoded with line breaks removed: no dock
// can add a header.
func composeEmail(d Delivery, e *Email, console string, now time.Time) []byte {
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", formatAddr(e.From))
	tos := make([]string, len(e.To))
	for i, t := range e.To {
		tos[i] = formatAddr(t)
	}
	header("To", strings.Join(tos, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(subject(d))))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+d.ID+"@dock-central>")
	header("X-Dock-Delivery", d.ID)
	header("MIME-Version", "1.0")
	header("Content-Type", `text/plain; charset="utf-8"`)
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(digestText(d, console), "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes()
}

func formatAddr(s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return oneLine(s)
	}
	return a.String()
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// subject names the dock and how many faults.
func subject(d Delivery) string {
	if len(d.Faults) == 1 {
		f := d.Faults[0]
		return fmt.Sprintf("dock %s: fault %s on %s", d.Dock, f.Code, f.Device)
	}
	return fmt.Sprintf("dock %s: %d new faults", d.Dock, len(d.Faults))
}

// digestText is the body of an e-mail: every fault of the delivery.
func digestText(d Delivery, console string) string {
	var b strings.Builder
	n := "1 new fault"
	if len(d.Faults) != 1 {
		n = fmt.Sprintf("%d new faults", len(d.Faults))
	}
	fmt.Fprintf(&b, "%s on dock %s (team %s):\n\n", n, d.Dock, d.Team)
	for _, f := range d.Faults {
		where := f.Device
		if f.Slot >= 0 {
			where = fmt.Sprintf("%s in bay %d", f.Device, f.Slot)
		}
		fmt.Fprintf(&b, "- %s: %s\n  raised %s, first heard %s\n", f.Code, where,
			f.RaisedAt.UTC().Format("2006-01-02 15:04:05 MST"), f.Seen.UTC().Format("2006-01-02 15:04:05 MST"))
		if f.Detail != "" {
			fmt.Fprintf(&b, "  %s\n", f.Detail)
		}
	}
	if console != "" {
		fmt.Fprintf(&b, "\nAcknowledge them in the console: %s\n", console)
	} else {
		b.WriteString("\nAcknowledge them in the console's faults inbox.\n")
	}
	fmt.Fprintf(&b, "\nDelivery %s\n", d.ID)
	return b.String()
}
