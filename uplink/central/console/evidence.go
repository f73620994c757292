package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"dock/uplink/central/fleet"
	"dock/uplink/wire"
)

// evidenceView is the Evidence page: a search, its results, the view requests.
type evidenceView struct {
	Q          fleet.Search
	Recordings []fleet.Recording
	Requests   []fleet.ViewRequest
	Holds      []fleet.HoldStep
	Reasons    []string
}

func (s *Server) evidencePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	search := fleet.Search{Officer: q.Get("officer"), Device: q.Get("device"), Dock: q.Get("dock"), Day: q.Get("day"), Class: q.Get("class")}
	v := view{Title: "Evidence"}
	recs, err := s.o.DB.Recordings(search)
	if err != nil {
		v.Flash = err.Error()
	}
	reqs, err := s.o.DB.ViewRequests(100)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	holds, err := s.o.DB.Holds(100)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	v.Data = evidenceView{Q: search, Recordings: recs, Requests: reqs, Holds: holds, Reasons: fleet.HoldReasons}
	s.render(w, r, "evidence", v)
}

// holdPost places or releases a hold (supervisors): audited at central, and sent to the
// dock as its signed place-hold or release-hold command.
func (s *Server) holdPost(w http.ResponseWriter, r *http.Request) {
	who := sessionOf(r).User
	dock, id := r.PostFormValue("dock"), r.PostFormValue("recording")
	reason := r.PostFormValue("reason")
	if r.PostFormValue("action") == "release" {
		reason = ""
	}
	kind, err := s.o.DB.SetHold(dock, id, reason, r.PostFormValue("why"), who)
	if err != nil {
		back(w, r, "/evidence", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := s.o.Docks.Command(ctx, dock, wire.CommandMsg{Kind: kind, Recording: id, By: who, Reason: reason}); err != nil {
		_ = s.o.DB.Audit(who, "command-failed", dock+"/"+id, kind+": "+err.Error())
		back(w, r, "/evidence", fmt.Sprintf("%s recorded at central, but the command did not reach the broker (%v): do it again to resend", kind, err))
		return
	}
	flash := "hold released at central and sent to " + dock + " as release-hold"
	if kind == "place-hold" {
		flash = "hold placed at central (" + reason + ") and sent to " + dock + " as place-hold: the recording has no retention expiry while it lasts"
	}
	back(w, r, "/evidence", flash)
}

func (s *Server) viewRequest(w http.ResponseWriter, r *http.Request) {
	rid, err := s.o.DB.RequestView(r.PostFormValue("dock"), r.PostFormValue("recording"), r.PostFormValue("reason"), sessionOf(r).User)
	if err != nil {
		back(w, r, "/evidence", err.Error())
		return
	}
	back(w, r, "/evidence", fmt.Sprintf("request %d recorded: a second person with the approver role must approve it", rid))
}

func (s *Server) viewApprove(w http.ResponseWriter, r *http.Request) {
	rid, err := strconv.ParseInt(r.PostFormValue("request"), 10, 64)
	if err == nil {
		err = s.o.DB.ApproveView(rid, sessionOf(r).User)
	}
	if err != nil {
		back(w, r, "/evidence", err.Error())
		return
	}
	back(w, r, "/evidence", fmt.Sprintf("request %d approved", rid))
}

// viewFootage shows a recording's footage to who asked for it, once someone else
// approved; the view is audited before a byte is sent.
func (s *Server) viewFootage(w http.ResponseWriter, r *http.Request) {
	rid, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	rec, err := s.o.DB.View(rid, sessionOf(r).User)
	switch {
	case errors.Is(err, fleet.ErrNotApproved):
		s.fail(w, r, http.StatusForbidden, err)
		return
	case errors.Is(err, fleet.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, err)
		return
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	if s.o.Footage == nil {
		s.fail(w, r, http.StatusNotFound, errors.New("this console has no footage store"))
		return
	}
	path, err := s.o.Footage(rec.Dock, rec.ID)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	// The bytes are what a dock uploaded: never a page of this origin. Video by the
	// name's extension, else opaque bytes; sandboxed either way.
	h := w.Header()
	h.Set("Content-Type", footageType(rec.Name))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; media-src 'self'")
	h.Set("Content-Disposition", "inline")
	http.ServeFile(w, r, path)
}

// footageType is the Content-Type footage is served with: a video type for the extensions
// cameras write, application/octet-stream for anything else.
func footageType(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".mp4", ".m4v":
		return "video/mp4"
	case ".mov":
		return "video/quicktime"
	case ".mkv":
		return "video/x-matroska"
	case ".webm":
		return "video/webm"
	}
	return "application/octet-stream"
}
