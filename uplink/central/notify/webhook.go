package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Message is what a webhook receives: one dock's new faults for one team.
type Message struct {
	Delivery string    `json:"delivery"`
	Team     string    `json:"team"`
	Dock     string    `json:"dock"`
	Faults   []Fault   `json:"faults"`
	Created  time.Time `json:"created"`
	Console  string    `json:"console,omitempty"` // the console's faults inbox for the dock
}

// Header names of the webhook.
const (
	HeaderDelivery  = "X-Dock-Delivery"
	HeaderTimestamp = "X-Dock-Timestamp"
	HeaderSignature = "X-Dock-Signature"
)

// Sign is the signature header's value for body sent at timestamp ts (Unix seconds).
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify is what a webhook receiver does with a request's headers and raw body: the
// signature must be the team secret's over the timestamp and the body, and the timestamp
// within tolerance of now.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("webhook timestamp %q: %w", h.Get(HeaderTimestamp), err)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook timestamp %d is %v from now: a replay, or a wrong clock", ts, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(secret, ts, body))) {
		return errors.New("webhook signature does not match the body and timestamp under the secret")
	}
	return nil
}

// PermanentError is a refusal that sending again cannot change.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() + " (permanent)" }
func (e *PermanentError) Unwrap() error { return e.Err }

// webhookClient posts without following redirects: the signed body goes where configured.
func webhookClient() *http.Client {
	return &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// postWebhook makes one attempt to deliver m to w.
func postWebhook(ctx context.Context, c *http.Client, w *Webhook, m Message, now time.Time) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{err}
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dock-central-notify")
	req.Header.Set(HeaderDelivery, m.Delivery)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.Secret, ts, body))
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", redact(w.URL), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("webhook %s answered %s: %q", redact(w.URL), resp.Status, strings.TrimSpace(string(snippet)))
	switch s := resp.StatusCode; {
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s == http.StatusTooManyRequests:
		return err
	case s/100 == 4:
		return &PermanentError{err}
	}
	return err
}

// redact is a URL for a log line: without its query (tokens live there) or user info.
func redact(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 && at < strings.IndexByte(rest+"/", '/') {
			rest = rest[at+1:]
		}
		return scheme + "://" + rest
	}
	return raw
}
