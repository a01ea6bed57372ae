package jsonview

import (
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// Status is `siteflip status -o json`.
type Status struct {
	Header
	Installation string    `json:"installation"`
	AnsweredBy   string    `json:"answered_by"`
	ReadAt       time.Time `json:"read_at"`
	Revision     int64     `json:"revision"`
	Controller   string    `json:"controller"`
	// ControllerTerm is the controller's fencing token; 0 while none is
	// elected.
	ControllerTerm      int64     `json:"controller_term"`
	ControllerElectedAt time.Time `json:"controller_elected_at,omitzero"`
	RaftLeader          string    `json:"raft_leader,omitempty"`
	// Problems are the installation's own: its locations, whatever the
	// groups.
	Problems []Problem `json:"problems"`
	Sites    []Site    `json:"sites"`
	Groups   []Group   `json:"groups"`
}

// Problem is one problem line, with the command that fixes it.
type Problem struct {
	Kind     string `json:"kind"`
	Message  string `json:"message"`
	Command  string `json:"command,omitempty"`
	On       string `json:"on,omitempty"`
	Site     string `json:"site,omitempty"`
	Resource string `json:"resource,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// KindOther is the kind of a problem line that came without one (from an
// agent of an earlier version).
const KindOther = "other"

// Site is one location.
type Site struct {
	Name          string          `json:"name"`
	Role          string          `json:"role"`
	Latitude      float64         `json:"latitude"`
	Longitude     float64         `json:"longitude"`
	Up            bool            `json:"up"`
	Reporting     bool            `json:"reporting"`
	RaftLeader    string          `json:"raft_leader,omitempty"`
	SeenBy        []string        `json:"seen_by"`
	UnseenBy      []string        `json:"unseen_by"`
	Sees          map[string]bool `json:"sees"`
	LostBy        []string        `json:"lost_by"`
	Lost          bool            `json:"lost"`
	Version       string          `json:"version,omitempty"`
	CertExpiresAt time.Time       `json:"cert_expires_at,omitzero"`
}

// Group is one protection group.
type Group struct {
	Name          string `json:"name"`
	PreferredSite string `json:"preferred_site"`
	ActiveSite    string `json:"active_site"`
	Epoch         int64  `json:"epoch"`
	State         string `json:"state"`
	// Phase is the run in progress and what it does (absent when none).
	Phase              *Phase            `json:"phase,omitempty"`
	Policy             string            `json:"policy"`
	MaxDataLossSeconds *float64          `json:"max_data_loss_seconds"`
	RTOTargetSeconds   *float64          `json:"rto_target_seconds"`
	Labels             map[string]string `json:"labels,omitempty"`
	Run                string            `json:"run,omitempty"`
	Drill              string            `json:"drill,omitempty"`
	Decision           *Decision         `json:"decision,omitempty"`
	Awaiting           *Awaiting         `json:"awaiting,omitempty"`
	// Paused: a person paused the group (siteflip pause); no automatic
	// failover until siteflip resume. PausedBy, PausedAt and PauseReason
	// say who, when and why (absent when not paused).
	Paused              bool                 `json:"paused"`
	PausedBy            string               `json:"paused_by,omitempty"`
	PausedAt            *time.Time           `json:"paused_at,omitempty"`
	PauseReason         string               `json:"pause_reason,omitempty"`
	ScheduledSwitchover *ScheduledSwitchover `json:"scheduled_switchover,omitempty"`
	Problems            []Problem            `json:"problems"`
	Drills              *Drills              `json:"drills,omitempty"`
	Resources           []Resource           `json:"resources"`
	// Readiness is the group's verdict on failing over now; absent from
	// an agent of an earlier version.
	Readiness *Readiness `json:"readiness,omitempty"`
	// Dependencies are its outside services as each of its sites last
	// probed them; absent when it requires none.
	Dependencies []Dependency `json:"dependencies,omitempty"`
}

// Readiness is a group's verdict (ready, at_risk, not_ready) and every
// reason for it, the worst first (docs/design/risk.md).
type Readiness struct {
	Verdict string   `json:"verdict"`
	Reasons []Reason `json:"reasons"`
}

// Reason is one thing that makes a group less than ready, or a note.
type Reason struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
	Site     string `json:"site,omitempty"`
}

// Dependency is one outside service at one site of the group.
type Dependency struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Site      string    `json:"site"`
	Critical  bool      `json:"critical"`
	Target    string    `json:"target,omitempty"`
	Known     bool      `json:"known"`
	Reachable bool      `json:"reachable"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	ChangedAt time.Time `json:"changed_at,omitzero"`
}

// ReadinessOf is the readiness of r, nil for none.
func ReadinessOf(r *status.Readiness) *Readiness {
	if r == nil {
		return nil
	}
	out := &Readiness{Verdict: r.Verdict, Reasons: []Reason{}}
	for _, x := range r.Reasons {
		out.Reasons = append(out.Reasons, Reason{Kind: x.Kind, Severity: x.Severity, Message: x.Message, Fix: x.Fix, Site: x.Site})
	}
	return out
}

// ScheduledSwitchover is a switchover a person scheduled for later.
type ScheduledSwitchover struct {
	To          string     `json:"to"`
	At          time.Time  `json:"at"`
	By          string     `json:"by"`
	Reason      string     `json:"reason,omitempty"`
	Ticket      string     `json:"ticket,omitempty"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	Refused     string     `json:"refused,omitempty"`
	RefusedAt   *time.Time `json:"refused_at,omitempty"`
}

// Phase is a run in progress on a group.
type Phase struct {
	Run    string `json:"run"`
	Action string `json:"action"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// Decision is a group waiting for a person.
type Decision struct {
	Site     string    `json:"site"`
	Reason   string    `json:"reason"`
	Command  string    `json:"command"`
	OpenedAt time.Time `json:"opened_at"`
}

// Awaiting is a run waiting at an approval step.
type Awaiting struct {
	Run       string    `json:"run"`
	Step      string    `json:"step"`
	Message   string    `json:"message,omitempty"`
	AskedAt   time.Time `json:"asked_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Drills is a group's drill schedule, its last drill and its next.
type Drills struct {
	EverySeconds  *float64     `json:"every_seconds,omitempty"`
	Window        string       `json:"window,omitempty"`
	Timezone      string       `json:"timezone,omitempty"`
	At            string       `json:"at,omitempty"`
	MaxAgeSeconds *float64     `json:"max_age_seconds,omitempty"`
	Last          *DrillResult `json:"last,omitempty"`
	LastSuccessAt time.Time    `json:"last_success_at,omitzero"`
	NextAt        time.Time    `json:"next_at,omitzero"`
	MissedAt      time.Time    `json:"missed_at,omitzero"`
}

// DrillResult is how a drill ended.
type DrillResult struct {
	Run        string    `json:"run"`
	Site       string    `json:"site"`
	StartedAt  time.Time `json:"started_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	Result     string    `json:"result"`
	RTOSeconds *float64  `json:"rto_seconds,omitempty"`
	RPOSeconds *float64  `json:"rpo_seconds,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Resource is one resource of a group at each of its sites.
type Resource struct {
	Name        string         `json:"name"`
	Type        string         `json:"type"`
	Class       string         `json:"class"`
	Synchronous *Synchronous   `json:"synchronous,omitempty"`
	Sites       []ResourceSite `json:"sites"`
}

// Synchronous is the recorded replication mode of a synchronous resource.
type Synchronous struct {
	Epoch     int64     `json:"epoch"`
	State     string    `json:"state"`
	Standby   string    `json:"standby,omitempty"`
	ChangedAt time.Time `json:"changed_at"`
	Reason    string    `json:"reason,omitempty"`
}

// ResourceSite is one resource at one site, in its class's terms: the
// fields of a database (timeline, streaming, lag) are absent for a
// traffic resource or a service, which say instead whether they are
// ready to take over.
type ResourceSite struct {
	Site     string `json:"site"`
	Observed bool   `json:"observed"`
	Up       bool   `json:"up"`
	Role     string `json:"role"`
	// Ready, for a traffic resource or a service at a site it does not
	// serve: it would take the clients (or start) at once.
	Ready *bool `json:"ready,omitempty"`
	// Target, for a traffic resource: where it sends the clients from
	// this site (a name's addresses, the routers a route is announced to).
	Target string `json:"target,omitempty"`
	// The fields of a resource that holds data.
	Timeline             *int64   `json:"timeline,omitempty"`
	Position             string   `json:"position,omitempty"`
	Streaming            *bool    `json:"streaming,omitempty"`
	LagBytes             *int64   `json:"lag_bytes,omitempty"`
	LagSeconds           *float64 `json:"lag_seconds,omitempty"`
	LagUnknown           string   `json:"lag_unknown,omitempty"`
	SenderState          string   `json:"sender_state,omitempty"`
	LastKnownLag         *Lag     `json:"last_known_lag,omitempty"`
	FailoverReady        *bool    `json:"failover_ready,omitempty"`
	FailoverBoundSeconds *float64 `json:"failover_bound_seconds,omitempty"`
	Error                string   `json:"error,omitempty"`
}

// Lag is a standby's lag as the controller last recorded it.
type Lag struct {
	LagSeconds float64   `json:"lag_seconds"`
	LagBytes   int64     `json:"lag_bytes"`
	Epoch      int64     `json:"epoch"`
	MeasuredAt time.Time `json:"measured_at"`
	SeenAt     time.Time `json:"seen_at"`
	Streaming  bool      `json:"streaming"`
}

// StatusOf is the document of st.
func StatusOf(st status.Status) Status {
	out := Status{
		Header:       header(KindStatus),
		Installation: st.Installation, AnsweredBy: st.AnsweredBy, ReadAt: utc(st.Time), Revision: st.Revision,
		Controller: st.Controller, ControllerTerm: st.ControllerTerm, ControllerElectedAt: utc(st.ControllerSince),
		RaftLeader: st.RaftLeader,
		Problems:   problems(st.Problems, st.Issues),
		Sites:      []Site{}, Groups: []Group{},
	}
	for _, s := range st.Sites {
		out.Sites = append(out.Sites, Site{
			Name: s.Name, Role: s.Role, Latitude: s.Latitude, Longitude: s.Longitude,
			Up: s.Up, Reporting: s.Reporting, RaftLeader: s.RaftLeader,
			SeenBy: nonNil(s.SeenBy), UnseenBy: nonNil(s.UnseenBy), Sees: s.Sees, LostBy: nonNil(s.LostBy), Lost: s.Lost,
			Version: s.Version, CertExpiresAt: utc(s.CertNotAfter),
		})
	}
	for _, g := range st.Groups {
		out.Groups = append(out.Groups, groupOf(g))
	}
	return out
}

func groupOf(g status.GroupStatus) Group {
	out := Group{
		Name: g.Name, PreferredSite: g.PreferredSite, ActiveSite: g.ActiveSite, Epoch: g.Epoch, State: g.State,
		Policy: g.Policy, MaxDataLossSeconds: parseSeconds(g.MaxDataLoss), RTOTargetSeconds: parseSeconds(g.RTOTarget),
		Labels: g.Labels, Run: g.Run, Drill: g.Drill,
		Problems:  problems(g.Problems, g.Issues),
		Resources: []Resource{},
	}
	if g.Paused {
		out.Paused, out.PausedBy, out.PauseReason = true, g.PausedBy, g.PauseReason
		if !g.PausedAt.IsZero() {
			at := utc(g.PausedAt)
			out.PausedAt = &at
		}
	}
	if sc := g.ScheduledSwitchover; sc != nil {
		out.ScheduledSwitchover = &ScheduledSwitchover{To: sc.To, At: utc(sc.At), By: sc.By, Reason: sc.Reason, Ticket: sc.Ticket, ScheduledAt: utc(sc.Since), Refused: sc.Refused}
		if !sc.RefusedAt.IsZero() {
			at := utc(sc.RefusedAt)
			out.ScheduledSwitchover.RefusedAt = &at
		}
	}
	if p := g.Phase; p != nil {
		out.Phase = &Phase{Run: p.Run, Action: p.Action, From: p.From, To: p.To}
	}
	if d := g.Decision; d != nil {
		out.Decision = &Decision{Site: d.Site, Reason: d.Reason, Command: d.Command, OpenedAt: utc(d.Since)}
	}
	if a := g.Awaiting; a != nil {
		out.Awaiting = &Awaiting{Run: a.Run, Step: a.Step, Message: a.Message, AskedAt: utc(a.Since), ExpiresAt: utc(a.Until)}
	}
	if d := g.Drills; d != nil {
		out.Drills = &Drills{
			EverySeconds: parseSeconds(d.Every), Window: d.Window, Timezone: d.Timezone, At: d.At, MaxAgeSeconds: parseSeconds(d.MaxAge),
			Last: drillResultOf(d.Last), LastSuccessAt: utc(d.LastSuccess), NextAt: utc(d.Next), MissedAt: utc(d.Missed),
		}
	}
	for _, r := range g.Resources {
		out.Resources = append(out.Resources, resourceOf(r))
	}
	out.Readiness = ReadinessOf(g.Readiness)
	for _, d := range g.Dependencies {
		out.Dependencies = append(out.Dependencies, Dependency{Name: d.Name, Type: d.Type, Site: d.Site, Critical: d.Critical, Target: d.Target,
			Known: d.Known, Reachable: d.Reachable, Error: d.Error, CheckedAt: utc(d.CheckedAt), ChangedAt: utc(d.Since)})
	}
	return out
}

func drillResultOf(d *status.DrillResult) *DrillResult {
	if d == nil {
		return nil
	}
	return &DrillResult{Run: d.Run, Site: d.Site, StartedAt: utc(d.Started), EndedAt: utc(d.Ended), Result: d.Result,
		RTOSeconds: d.RTOSeconds, RPOSeconds: d.RPOSeconds, Error: d.Error}
}

func resourceOf(r status.ResourceStatus) Resource {
	out := Resource{Name: r.Name, Type: r.Type, Class: r.Class, Sites: []ResourceSite{}}
	if s := r.Synchronous; s != nil {
		out.Synchronous = &Synchronous{Epoch: s.Epoch, State: s.State, Standby: s.Standby, ChangedAt: utc(s.Since), Reason: s.Reason}
	}
	data := r.Class == string(config.ClassData) || r.Class == ""
	for _, s := range r.Sites {
		rs := ResourceSite{Site: s.Site, Observed: s.Observed, Up: s.Up, Role: s.Role, Error: s.Error}
		switch {
		case data:
			streaming := s.Streaming
			rs.Streaming = &streaming
			if s.Timeline != 0 {
				tl := s.Timeline
				rs.Timeline = &tl
			}
			rs.Position, rs.LagBytes, rs.LagSeconds, rs.LagUnknown = s.Position, s.LagBytes, s.LagSeconds, s.LagUnknown
			rs.SenderState, rs.FailoverReady = s.SenderState, s.FailoverReady
			rs.FailoverBoundSeconds = parseSeconds(s.FailoverBound)
			if l := s.LastKnownLag; l != nil {
				rs.LastKnownLag = &Lag{LagSeconds: l.Seconds, LagBytes: l.Bytes, Epoch: l.Epoch,
					MeasuredAt: utc(l.MeasuredAt), SeenAt: utc(l.SeenAt), Streaming: l.Streaming}
			}
		case s.Role == status.RoleStandby:
			// A traffic resource or a service parked at this site: its
			// agent says whether it would take over at once.
			ready := s.Streaming
			rs.Ready = &ready
		}
		if !data {
			rs.Target = s.Target
		}
		out.Sites = append(out.Sites, rs)
	}
	return out
}

// problems pairs each problem line with its structured form; a line
// without one (from an agent of an earlier version, or added outside
// status assembly) is kept with kind "other".
func problems(lines []string, issues []status.Problem) []Problem {
	byLine := map[string]status.Problem{}
	for _, p := range issues {
		byLine[p.Line()] = p
	}
	out := []Problem{}
	for _, l := range lines {
		p, ok := byLine[l]
		if !ok {
			out = append(out, Problem{Kind: KindOther, Message: l})
			continue
		}
		out = append(out, Problem{Kind: p.Kind, Message: p.Message, Command: p.Command, On: p.On, Site: p.Site, Resource: p.Resource, Detail: p.Detail})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
