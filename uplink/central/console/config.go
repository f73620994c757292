package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"dock/health"
	"dock/uplink/central/fleet"
	"dock/uplink/configrule"
	"dock/uplink/wire"
)

// configForm is the Config page: the form, its diff against the active config, the
// rollouts and every dock's desired vs reported version.
type configForm struct {
	Team, Officers, DueOut, Thresholds, AlertEvery, TelemetryEvery string
	DeleteAfterReceipt                                             bool
	Target, Dock, Group                                            string
	Canary                                                         int
	Blocked                                                        []string
	Active                                                         int64
	Diff                                                           []diffLine
	Docks                                                          []fleet.RolloutDock
	Rollouts                                                       []fleet.Rollout
}

// formOf fills the form from a config (the active one, or the defaults).
func formOf(c wire.ConfigMsg) configForm {
	f := configForm{Team: c.Team, DeleteAfterReceipt: c.DeleteAfterReceipt, Target: "all", Canary: 1}
	var lines []string
	for dev, off := range c.Officers {
		lines = append(lines, dev+"="+off)
	}
	slices.Sort(lines)
	f.Officers, f.DueOut = strings.Join(lines, "\n"), strings.Join(c.DueOut, " ")
	th, _ := json.MarshalIndent(health.DefaultThresholds(), "", "  ")
	var indented bytes.Buffer
	if len(c.Thresholds) > 0 && json.Indent(&indented, c.Thresholds, "", "  ") == nil {
		th = indented.Bytes()
	}
	f.Thresholds = string(th)
	if c.AlertEvery != 0 {
		f.AlertEvery = c.AlertEvery.D().String()
	}
	if c.TelemetryEvery != 0 {
		f.TelemetryEvery = c.TelemetryEvery.D().String()
	}
	return f
}

// configOf reads the form into a config (the fleet's block list included) and checks it
// with the dock's own rules: nothing that fails them is signed.
func configOf(r *http.Request, blocked []string) (wire.ConfigMsg, configForm, error) {
	f := configForm{Team: strings.TrimSpace(r.PostFormValue("team")), Officers: r.PostFormValue("officers"), DueOut: r.PostFormValue("due_out"),
		Thresholds: r.PostFormValue("thresholds"), AlertEvery: strings.TrimSpace(r.PostFormValue("alert_every")),
		TelemetryEvery: strings.TrimSpace(r.PostFormValue("telemetry_every")), DeleteAfterReceipt: r.PostFormValue("delete_after_receipt") != "",
		Target: r.PostFormValue("target"), Dock: r.PostFormValue("dock"), Group: r.PostFormValue("group")}
	var err error
	if f.Canary, err = formInt(r, "canary", 1); err != nil {
		return wire.ConfigMsg{}, f, err
	}
	c := wire.ConfigMsg{Team: f.Team, Blocked: blocked, DeleteAfterReceipt: f.DeleteAfterReceipt, Officers: map[string]string{}}
	for _, line := range strings.Split(f.Officers, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		dev, off, ok := strings.Cut(line, "=")
		if !ok {
			return c, f, fmt.Errorf("officers: %q is not DEVICE=OFFICER", line)
		}
		c.Officers[strings.TrimSpace(dev)] = strings.TrimSpace(off)
	}
	c.DueOut = strings.Fields(f.DueOut)
	if th := strings.TrimSpace(f.Thresholds); th != "" {
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(th)); err != nil {
			return c, f, fmt.Errorf("thresholds: %v", err)
		}
		c.Thresholds = json.RawMessage(compact.String())
	}
	for _, p := range []struct {
		field, v string
		to       *wire.Duration
	}{{"alert_every", f.AlertEvery, &c.AlertEvery}, {"telemetry_every", f.TelemetryEvery, &c.TelemetryEvery}} {
		if p.v == "" {
			continue
		}
		d, err := time.ParseDuration(p.v)
		if err != nil {
			return c, f, fmt.Errorf("%s: %v", p.field, err)
		}
		*p.to = wire.Duration(d)
	}
	return c, f, configrule.Check(c)
}

func (s *Server) configPage(w http.ResponseWriter, r *http.Request) {
	s.showConfig(w, r, nil, "")
}

// showConfig renders the Config page with form (nil: the active config's).
func (s *Server) showConfig(w http.ResponseWriter, r *http.Request, form *configForm, flash string) {
	active, _ := s.activeConfig()
	if form == nil {
		f := formOf(active)
		form = &f
	}
	form.Active = active.Version
	var err error
	if form.Docks, err = s.o.DB.DockConfigs(); err == nil {
		form.Rollouts, err = s.o.DB.Rollouts(10)
	}
	if err == nil {
		var bl []fleet.Blocked
		bl, err = s.o.DB.BlockList()
		form.Blocked = nil
		for _, b := range bl {
			form.Blocked = append(form.Blocked, b.Device)
		}
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, "config", view{Title: "Config", Flash: flash, Data: form})
}

// activeConfig is the newest config central made (zero before the first).
func (s *Server) activeConfig() (wire.ConfigMsg, error) {
	var c wire.ConfigMsg
	latest, err := s.o.DB.LatestConfig()
	if err != nil {
		return c, err
	}
	err = json.Unmarshal([]byte(latest.Body), &c)
	c.Version = latest.Version
	return c, err
}

// configPost previews a config (diff against the active one) or signs it and starts its
// rollout; either way the dock's rules are checked first.
func (s *Server) configPost(w http.ResponseWriter, r *http.Request) {
	bl, err := s.o.DB.BlockList()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	var blocked []string
	for _, b := range bl {
		blocked = append(blocked, b.Device)
	}
	c, form, err := configOf(r, blocked)
	if err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		s.showConfig(w, r, &form, "refused before signing: "+err.Error())
		return
	}
	active, _ := s.activeConfig()
	form.Diff = diffConfigs(active, c)
	if r.PostFormValue("action") != "rollout" {
		s.showConfig(w, r, &form, "preview: the changes against the active config are below")
		return
	}
	docks, err := s.targetDocks(form)
	if err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		s.showConfig(w, r, &form, err.Error())
		return
	}
	v, err := s.o.DB.NextConfigVersion()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	body, _ := json.Marshal(c)
	target := form.Target
	switch target {
	case "dock":
		target += " " + form.Dock
	case "group":
		target += " " + form.Group
	}
	id, err := s.o.DB.StartRollout(v, string(body), docks, form.Canary, target, sessionOf(r).User)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.stepRollouts(r.Context())
	back(w, r, "/config", fmt.Sprintf("version %d signed; rollout %d started: %d canary dock(s) first, then the rest once they applied it", v, id, min(max(form.Canary, 1), len(docks))))
}

// targetDocks are the docks a rollout goes to: all, one, or a group (ids separated by
// commas or spaces), each a dock central knows.
func (s *Server) targetDocks(f configForm) ([]string, error) {
	known, err := s.o.DB.Docks()
	if err != nil {
		return nil, err
	}
	var all []string
	for _, d := range known {
		all = append(all, d.Dock)
	}
	var want []string
	switch f.Target {
	case "all":
		want = all
	case "dock":
		want = []string{f.Dock}
	case "group":
		want = strings.FieldsFunc(f.Group, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
	default:
		return nil, fmt.Errorf("target %q: all, dock or group", f.Target)
	}
	for _, d := range want {
		if !slices.Contains(all, d) {
			return nil, fmt.Errorf("no dock %q known to central", d)
		}
	}
	if len(want) == 0 {
		return nil, errors.New("no dock to roll out to")
	}
	return want, nil
}
