package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"dock/health"
	"dock/uplink/central/fleet"
	"dock/uplink/wire"
)

// fleetView is the Fleet page: every dock, the quiet ones marked.
type fleetView struct {
	Docks    []fleet.Dock
	QuietAge time.Duration
}

// Quiet is used by the template to mark a dock that went quiet.
func (f fleetView) Quiet(d fleet.Dock, now time.Time) bool { return d.Quiet(now, f.QuietAge) }

func (s *Server) fleetPage(w http.ResponseWriter, r *http.Request) {
	docks, err := s.o.DB.Docks()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, "fleet", view{Title: "Fleet", Data: fleetView{Docks: docks, QuietAge: s.o.QuietAge}})
}

// cameraView is one camera on the Devices page.
type cameraView struct {
	fleet.Camera
	Plot    template.HTML
	Overdue bool // article 11: not docked within 24 h of its last shift
}

func (s *Server) devicesPage(w http.ResponseWriter, r *http.Request) {
	cams, err := s.o.DB.Cameras()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	limit := health.DefaultThresholds().MinBatteryHealthPct
	now := s.o.Now()
	out := make([]cameraView, 0, len(cams))
	for _, c := range cams {
		out = append(out, cameraView{Camera: c, Plot: sohPlot(c.History, limit), Overdue: c.OffloadOverdue(now)})
	}
	s.render(w, r, "devices", view{Title: "Devices", Data: out})
}

// faultsView is the Faults inbox.
type faultsView struct {
	Faults  []fleet.Fault
	Blocked []fleet.Blocked
}

func (s *Server) faultsPage(w http.ResponseWriter, r *http.Request) {
	fs, err := s.o.DB.Faults()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	bl, err := s.o.DB.BlockList()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, "faults", view{Title: "Faults", Data: faultsView{Faults: fs, Blocked: bl}})
}

// faultStep records a step on a fault and sends the dock its signed command.
func (s *Server) faultStep(w http.ResponseWriter, r *http.Request) {
	who := sessionOf(r).User
	dock, fault, step := r.PostFormValue("dock"), r.PostFormValue("fault"), fleet.FaultState(r.PostFormValue("step"))
	kind, err := s.o.DB.FaultStep(dock, fault, step, who, r.PostFormValue("ticket"), r.PostFormValue("shop"))
	switch {
	case errors.Is(err, fleet.ErrFaultStep), errors.Is(err, fleet.ErrNotFound):
		back(w, r, "/faults", err.Error())
		return
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	flash := fmt.Sprintf("%s: %s recorded", fault, step)
	if kind != "" {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := s.o.Docks.Command(ctx, dock, wire.CommandMsg{Kind: kind, Fault: fault, By: who}); err != nil {
			_ = s.o.DB.Audit(who, "command-failed", dock+"/"+fault, kind+": "+err.Error())
			back(w, r, "/faults", flash+fmt.Sprintf(", but the command did not reach the broker (%v): take the step again to resend it", err))
			return
		}
		flash += fmt.Sprintf(" and sent to %s as %s; the dock's confirmation shows here when its ledger reports it", dock, kind)
	}
	back(w, r, "/faults", flash)
}

// blockDevice edits the fleet's block list (supervisors).
func (s *Server) blockDevice(w http.ResponseWriter, r *http.Request) {
	block := r.PostFormValue("action") == "block"
	err := s.o.DB.SetBlocked(r.PostFormValue("device"), r.PostFormValue("reason"), sessionOf(r).User, block)
	if err != nil {
		back(w, r, "/faults", err.Error())
		return
	}
	back(w, r, "/faults", "block list changed: the docks take it with the next config rolled out")
}

func (s *Server) ledgersPage(w http.ResponseWriter, r *http.Request) {
	ls, err := s.o.DB.Ledgers()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, "ledgers", view{Title: "Ledgers", Data: ls})
}

// entriesView is one dock's ledger entries.
type entriesView struct {
	Dock    string
	Entries []fleet.LedgerEntry
}

func (s *Server) ledgerEntries(w http.ResponseWriter, r *http.Request) {
	dock := r.PathValue("dock")
	es, err := s.o.DB.LedgerEntries(dock, 500)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, "entries", view{Title: "Ledger of " + dock, Data: entriesView{Dock: dock, Entries: es}})
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) {
	lines, err := s.o.DB.AuditLog(r.URL.Query().Get("action"), 1000)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, "audit", view{Title: "Audit log", Data: lines})
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "users", view{Title: "People", Data: fleet.Roles})
}

// addUser creates a person and shows their one-time password once.
func (s *Server) addUser(w http.ResponseWriter, r *http.Request) {
	name, role := r.PostFormValue("name"), fleet.Role(r.PostFormValue("role"))
	pw, err := s.o.DB.AddUser(name, role, sessionOf(r).User)
	if err != nil {
		back(w, r, "/users", err.Error())
		return
	}
	s.render(w, r, "users", view{Title: "People", Data: fleet.Roles,
		Flash: fmt.Sprintf("%s (%s) created. One-time password, shown only now: %s", name, role, pw)})
}

// formInt reads a form's integer field, def when empty.
func formInt(r *http.Request, name string, def int) (int, error) {
	v := r.PostFormValue(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", name, v)
	}
	return n, nil
}
