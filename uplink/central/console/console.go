// Package console owns the central office's web console served by central: the pages
// people work in (fleet, devices, faults, config, evidence, ledgers, audit), sign-in,
// roles and CSRF. It keeps no state of its own (package fleet does) and reaches docks only
// through the receiver's signed commands and configs.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"dock/uplink/central/fleet"
	"dock/uplink/wire"
)

//go:embed templates/*.html
var templateFiles embed.FS

// Dispatcher sends signed messages to docks: *central.Receiver is one.
type Dispatcher interface {
	// Command sends a one-off command, sealed for the dock.
	Command(ctx context.Context, dock string, c wire.CommandMsg) error
	// PushConfig publishes a dock's desired config, signed and sealed for it.
	PushConfig(ctx context.Context, dock string, c wire.ConfigMsg) error
}

// Footage opens a filed recording's bytes for an approved view (central.Storage.Filed's
// path): the console never shows footage otherwise.
type Footage func(dock, id string) (path string, err error)

// Options configure a console.
type Options struct {
	DB       *fleet.DB
	Docks    Dispatcher
	Footage  Footage
	Log      *slog.Logger
	Secure   bool          // served over TLS: cookies are Secure
	QuietAge time.Duration // a dock not heard from for longer stands out (0: 1 minute)
	Now      func() time.Time
}

// Server is the console's HTTP handler.
type Server struct {
	o    Options
	mux  *http.ServeMux
	tmpl map[string]*template.Template

	rolloutMu sync.Mutex // one step of the rollouts at a time
}

// New builds the console. Its rollouts run while ctx lives.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.DB == nil || o.Docks == nil {
		return nil, errors.New("console: needs the fleet database and a dispatcher")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.QuietAge == 0 {
		o.QuietAge = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	s.routes()
	go s.runRollouts(ctx)
	return s, nil
}

// ServeHTTP implements http.Handler, with headers that keep the pages to themselves.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if s.o.Secure {
		h.Set("Strict-Transport-Security", "max-age=31536000") // a year: back only over TLS
	}
	s.mux.ServeHTTP(w, r)
}

// page is one of the console's pages: who may see it, who may post to it.
type page struct {
	see, act []fleet.Role
}

var (
	everyone    = []fleet.Role{fleet.RoleMaintenance, fleet.RoleSupervisor, fleet.RoleApprover, fleet.RoleAuditor, fleet.RoleAdmin}
	office      = []fleet.Role{fleet.RoleSupervisor, fleet.RoleApprover, fleet.RoleAuditor, fleet.RoleAdmin}
	maintainers = []fleet.Role{fleet.RoleMaintenance, fleet.RoleSupervisor, fleet.RoleAdmin}
	supervisors = []fleet.Role{fleet.RoleSupervisor, fleet.RoleAdmin}
	admins      = []fleet.Role{fleet.RoleAdmin}
	auditors    = []fleet.Role{fleet.RoleSupervisor, fleet.RoleAuditor, fleet.RoleAdmin}
)

func (s *Server) routes() {
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.authed(everyone, s.logout))
	s.mux.HandleFunc("GET /{$}", s.authed(everyone, s.fleetPage))
	s.mux.HandleFunc("GET /devices", s.authed(everyone, s.devicesPage))
	s.mux.HandleFunc("GET /faults", s.authed(everyone, s.faultsPage))
	s.mux.HandleFunc("POST /faults/step", s.authed(maintainers, s.faultStep))
	s.mux.HandleFunc("POST /faults/block", s.authed(supervisors, s.blockDevice))
	s.mux.HandleFunc("GET /config", s.authed(admins, s.configPage))
	s.mux.HandleFunc("POST /config", s.authed(admins, s.configPost))
	s.mux.HandleFunc("GET /evidence", s.authed(office, s.evidencePage))
	s.mux.HandleFunc("POST /evidence/hold", s.authed(supervisors, s.holdPost))
	s.mux.HandleFunc("POST /evidence/request", s.authed(office, s.viewRequest))
	s.mux.HandleFunc("POST /evidence/approve", s.authed([]fleet.Role{fleet.RoleApprover}, s.viewApprove))
	s.mux.HandleFunc("GET /evidence/view/{id}", s.authed(office, s.viewFootage))
	s.mux.HandleFunc("GET /ledgers", s.authed(everyone, s.ledgersPage))
	s.mux.HandleFunc("GET /ledgers/{dock}", s.authed(everyone, s.ledgerEntries))
	s.mux.HandleFunc("GET /audit", s.authed(auditors, s.auditPage))
	s.mux.HandleFunc("GET /users", s.authed(admins, s.usersPage))
	s.mux.HandleFunc("POST /users", s.authed(admins, s.addUser))
}

// fail answers with an error page (and logs server-side failures).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	if code >= 500 {
		s.o.Log.Error("console: request failed", "path", r.URL.Path, "err", err)
	}
	w.WriteHeader(code)
	_ = s.tmpl["error"].ExecuteTemplate(w, "layout", view{Title: http.StatusText(code), Data: fmt.Sprint(err), Session: sessionOf(r)})
}
