package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is the notifications file (see the package doc), with its secrets read.
type Config struct {
	Gather     Duration `json:"gather,omitzero"`
	Retry      Retry    `json:"retry,omitzero"`
	Remember   Duration `json:"remember,omitzero"`
	ConsoleURL string   `json:"console_url,omitempty"`
	SMTP       *SMTP    `json:"smtp,omitempty"`
	Teams      []Team   `json:"teams"`
}

// Retry is the backoff of a delivery that failed.
type Retry struct {
	First  Duration `json:"first,omitzero"`   // the wait after the first failure (2 s)
	Max    Duration `json:"max,omitzero"`     // the longest wait (10 min)
	GiveUp Duration `json:"give_up,omitzero"` // a delivery older than this is given up (24 h)
}

// SMTP is the submission server every team's e-mail goes through.
type SMTP struct {
	Addr         string `json:"addr"`
	Security     string `json:"security,omitempty"` // starttls (default), tls or none
	CAFile       string `json:"ca_file,omitempty"`
	Username     string `json:"username,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
	Hello        string `json:"hello,omitempty"`
	// Timeout bounds one attempt, connection to QUIT (1 min): a server that never greets
	// (one speaking TLS at once, asked for STARTTLS) fails the attempt, tried again later.
	Timeout  Duration `json:"timeout,omitzero"`
	Password string   `json:"-"` // read from PasswordFile
}

// Team is who hears of which docks' faults, and how.
type Team struct {
	Name    string   `json:"name"`
	Docks   []string `json:"docks,omitempty"`
	Webhook *Webhook `json:"webhook,omitempty"`
	Email   *Email   `json:"email,omitempty"`
}

// Webhook is a team's outgoing webhook.
type Webhook struct {
	URL        string `json:"url"`
	SecretFile string `json:"secret_file,omitempty"`
	Secret     []byte `json:"-"` // read from SecretFile
}

// Email is a team's e-mail.
type Email struct {
	From string   `json:"from"`
	To   []string `json:"to"`
}

// Duration is a time.Duration written as a string ("10s").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %s is negative", s)
	}
	*d = Duration(v)
	return nil
}

// Defaults of a Config's zero fields.
const (
	DefaultGather   = 10 * time.Second
	DefaultFirst    = 2 * time.Second
	DefaultMax      = 10 * time.Minute
	DefaultGiveUp   = 24 * time.Hour
	DefaultRemember = 30 * 24 * time.Hour
)

// withDefaults fills c's zero durations.
func (c Config) withDefaults() Config {
	set := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	set(&c.Gather, DefaultGather)
	set(&c.Retry.First, DefaultFirst)
	set(&c.Retry.Max, DefaultMax)
	set(&c.Retry.GiveUp, DefaultGiveUp)
	set(&c.Remember, DefaultRemember)
	return c
}

// LoadConfig reads a notifications file and the secrets it names, and checks it.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("notifications: %w", err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("notifications %s: %w", path, err)
	}
	if c.SMTP != nil && c.SMTP.PasswordFile != "" {
		p, err := readSecret(c.SMTP.PasswordFile)
		if err != nil {
			return Config{}, fmt.Errorf("notifications %s: smtp password: %w", path, err)
		}
		c.SMTP.Password = string(p)
	}
	for i := range c.Teams {
		if w := c.Teams[i].Webhook; w != nil && w.SecretFile != "" {
			if w.Secret, err = readSecret(w.SecretFile); err != nil {
				return Config{}, fmt.Errorf("notifications %s: team %q webhook secret: %w", path, c.Teams[i].Name, err)
			}
		}
	}
	if err := c.Check(); err != nil {
		return Config{}, fmt.Errorf("notifications %s: %w", path, err)
	}
	return c, nil
}

// readSecret reads a secret from a file its owner alone may read or write.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: group or others may read or write it, want 0600", path, m)
	}
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := bytes.TrimSpace(b[:n])
	if len(s) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// Check refuses a config that could not deliver what it names.
func (c Config) Check() error {
	var errs []error
	if c.ConsoleURL != "" {
		if u, err := url.Parse(c.ConsoleURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("console_url %q: want an http or https URL", c.ConsoleURL))
		}
	}
	mailed := false
	names := map[string]bool{}
	for _, t := range c.Teams {
		if t.Name == "" {
			errs = append(errs, errors.New("a team without a name"))
		}
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("team %q named twice", t.Name))
		}
		names[t.Name] = true
		if t.Webhook == nil && t.Email == nil {
			errs = append(errs, fmt.Errorf("team %q has neither webhook nor email", t.Name))
		}
		if w := t.Webhook; w != nil {
			u, err := url.Parse(w.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("team %q webhook url %q: want an http or https URL", t.Name, w.URL))
			}
			if len(w.Secret) == 0 {
				errs = append(errs, fmt.Errorf("team %q webhook has no secret (secret_file): its receiver could not tell it from a forgery", t.Name))
			}
		}
		if e := t.Email; e != nil {
			mailed = true
			if _, err := mail.ParseAddress(e.From); err != nil {
				errs = append(errs, fmt.Errorf("team %q email from %q: %w", t.Name, e.From, err))
			}
			if len(e.To) == 0 {
				errs = append(errs, fmt.Errorf("team %q email has no recipient", t.Name))
			}
			for _, to := range e.To {
				if _, err := mail.ParseAddress(to); err != nil {
					errs = append(errs, fmt.Errorf("team %q email to %q: %w", t.Name, to, err))
				}
			}
		}
	}
	if mailed && c.SMTP == nil {
		errs = append(errs, errors.New("a team has email but there is no smtp server"))
	}
	if s := c.SMTP; s != nil {
		host, _, err := net.SplitHostPort(s.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("smtp addr %q: %w", s.Addr, err))
		}
		switch s.Security {
		case "", "starttls", "tls":
		case "none":
			if !loopback(host) {
				errs = append(errs, fmt.Errorf("smtp security none to %s: plaintext SMTP only to loopback", host))
			}
		default:
			errs = append(errs, fmt.Errorf("smtp security %q: want starttls, tls or none", s.Security))
		}
		if s.Username != "" && s.Password == "" {
			errs = append(errs, errors.New("smtp username without a password (password_file)"))
		}
		if strings.ContainsAny(s.Hello, " \r\n") {
			errs = append(errs, fmt.Errorf("smtp hello %q: one name, no blanks", s.Hello))
		}
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
