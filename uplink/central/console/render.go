package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"dock/uplink/central/fleet"
)

// view is what every page's template gets.
type view struct {
	Title   string
	Session *fleet.Session
	Flash   string // a message for the person: what just happened or why not
	Data    any
	Now     time.Time
}

// CSRF is the token the page's forms carry.
func (v view) CSRF() string {
	if v.Session == nil {
		return ""
	}
	return v.Session.CSRF
}

// Can reports whether the person may do what the named group of roles may.
func (v view) Can(group string) bool {
	return may(v.Session, map[string][]fleet.Role{
		"everyone": everyone, "office": office, "maintainers": maintainers, "supervisors": supervisors,
		"admins": admins, "auditors": auditors, "approvers": {fleet.RoleApprover},
	}[group])
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"day": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02")
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Truncate(time.Second).String() + " ago"
	},
	"mb": func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) },
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
}

// parseTemplates parses each page with the layout it is shown in.
func (s *Server) parseTemplates() error {
	layout, err := fs.ReadFile(templateFiles, "templates/layout.html")
	if err != nil {
		return err
	}
	pages, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return err
	}
	s.tmpl = map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		body, err := fs.ReadFile(templateFiles, p)
		if err != nil {
			return err
		}
		t, err := template.New(name).Funcs(funcs).Parse(string(layout))
		if err == nil {
			_, err = t.Parse(string(body))
		}
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		s.tmpl[name] = t
	}
	return nil
}

// render shows page name with v, the session and the time filled in.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, v view) {
	v.Session, v.Now = sessionOf(r), s.o.Now().UTC()
	q := r.URL.Query()
	if sig := flashSig(v.Session, q.Get("flash")); v.Flash == "" && sig != "" && hmac.Equal([]byte(q.Get("fs")), []byte(sig)) {
		v.Flash = q.Get("flash")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.tmpl[name].ExecuteTemplate(w, "layout", v); err != nil {
		s.o.Log.Error("console: rendering", "page", name, "err", err)
	}
}

// back redirects to the page a form came from, with a message for the person, signed for
// their session: a link someone else made puts no words in the console's mouth.
func back(w http.ResponseWriter, r *http.Request, path, flash string) {
	if sig := flashSig(sessionOf(r), flash); flash != "" && sig != "" {
		path += "?flash=" + template.URLQueryEscaper(flash) + "&fs=" + sig
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// flashSig is the HMAC-SHA256 of a message under the session's CSRF token ("" without a
// session: a page shown signed out carries no message from its link).
func flashSig(sess *fleet.Session, flash string) string {
	if sess == nil || sess.CSRF == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte("flash\x00"+sess.CSRF))
	m.Write([]byte(flash))
	return hex.EncodeToString(m.Sum(nil))
}

// discardLog is a logger that drops everything.
func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
