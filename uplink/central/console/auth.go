package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"dock/uplink/central/fleet"
)

// cookieName is the session cookie's name: with TLS the __Host- prefix, which browsers
// accept only Secure, from this host, for path /.
func (s *Server) cookieName() string {
	if s.o.Secure {
		return "__Host-console"
	}
	return "console"
}

type sessionKey struct{}

// sessionOf is the signed-in person of a request passed through authed (nil otherwise).
func sessionOf(r *http.Request) *fleet.Session {
	s, _ := r.Context().Value(sessionKey{}).(*fleet.Session)
	return s
}

// authed lets a request through only with a live session whose role is in roles (403
// otherwise); a POST must carry the session's CSRF token and, when the browser says where
// it comes from, come from this console.
func (s *Server) authed(roles []fleet.Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(s.cookieName())
		var sess fleet.Session
		if err == nil {
			sess, err = s.o.DB.Session(c.Value)
		}
		if err != nil {
			if !errors.Is(err, http.ErrNoCookie) && !errors.Is(err, fleet.ErrNotFound) {
				s.fail(w, r, http.StatusInternalServerError, err)
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, http.StatusUnauthorized, errors.New("sign in first"))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, &sess))
		if !slices.Contains(roles, sess.Role) {
			s.fail(w, r, http.StatusForbidden, errors.New("your role ("+string(sess.Role)+") may not do this"))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
				_ = s.o.DB.Audit(sess.User, "csrf-refused", r.URL.Path, "")
				s.fail(w, r, http.StatusForbidden, errors.New("the form's token is missing or stale: reload the page"))
				return
			}
		}
		h(w, r)
	}
}

// sameOrigin reports whether a browser's Origin header, when sent, names this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login", view{Title: "Sign in", Data: r.URL.Query().Get("next")})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.fail(w, r, http.StatusForbidden, errors.New("cross-origin sign-in refused"))
		return
	}
	token, sess, err := s.o.DB.Login(r.PostFormValue("user"), r.PostFormValue("password"))
	if errors.Is(err, fleet.ErrBadLogin) || errors.Is(err, fleet.ErrLockedOut) {
		code := http.StatusUnauthorized
		if errors.Is(err, fleet.ErrLockedOut) {
			code = http.StatusTooManyRequests
		}
		w.WriteHeader(code)
		s.render(w, r, "login", view{Title: "Sign in", Flash: err.Error(), Data: r.PostFormValue("next")})
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	// The browser's previous session (someone else at a shared PC, say) ends at central.
	if c, err := r.Cookie(s.cookieName()); err == nil {
		if old, err := s.o.DB.Session(c.Value); err == nil {
			if err := s.o.DB.Logout(c.Value, old.User); err != nil {
				s.fail(w, r, http.StatusInternalServerError, err)
				return
			}
		}
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: token, Path: "/", Expires: sess.Expires,
		Secure: s.o.Secure, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, localPath(r.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(s.cookieName()); err == nil {
		if err := s.o.DB.Logout(c.Value, sessionOf(r).User); err != nil {
			s.fail(w, r, http.StatusInternalServerError, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: "", Path: "/", MaxAge: -1, Secure: s.o.Secure, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// may reports whether the request's person has one of roles (templates show only what
// they may do).
func may(sess *fleet.Session, roles []fleet.Role) bool {
	return sess != nil && slices.Contains(roles, sess.Role)
}

// localPath is where to go after signing in: next if it is a path on this console, else
// "/" (never another site: not "//host", "/\\host", "https://…").
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || next[0] != '/' || strings.ContainsAny(next, "\\\r\n") ||
		(len(next) > 1 && next[1] == '/') {
		return "/"
	}
	return next
}
