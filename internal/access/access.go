// Package access decides who may call what on an agent's API. It resolves
// the name in a client certificate into a principal — a location, a person
// or program bound to a role in the topology, or nobody — and holds the one
// table of the agent's endpoints with the principals each admits. The
// agent's router is built from this table, so an endpoint without an entry
// cannot exist (docs/design/safety.md).
package access

import (
	"errors"
	"fmt"

	"github.com/siteflip/siteflip/internal/config"
)

// Role is what a person or program may do. Roles nest: an admin may do
// what an operator may, an operator what a viewer may.
type Role int

// Roles, weakest first.
const (
	None     Role = iota // a certificate of the CA bound to no role
	Viewer               // status, runs, audit, metrics
	Operator             // switchover, failback, reprotect, failover within max_data_loss, pause, resume
	Admin                // failover that accepts data loss, failover --force
)

func (r Role) String() string {
	switch r {
	case Viewer:
		return config.AccessViewer
	case Operator:
		return config.AccessOperator
	case Admin:
		return config.AccessAdmin
	}
	return "none"
}

// ParseRole reads a role as the topology writes it.
func ParseRole(s string) (Role, bool) {
	switch s {
	case config.AccessViewer:
		return Viewer, true
	case config.AccessOperator:
		return Operator, true
	case config.AccessAdmin:
		return Admin, true
	}
	return None, false
}

// Principal is who sent a request.
type Principal struct {
	// Name is the client certificate's common name; "" without TLS.
	Name string
	// Site is the location whose certificate it is, "" for anybody else.
	Site string
	// Role is a person's or program's role; None for locations.
	Role Role
	// Anonymous is set when the installation runs without TLS: nobody is
	// known, reads are open and changes refused.
	Anonymous bool
	// Via is how the caller proved who it is: ViaCertificate, ViaToken,
	// or "" (anonymous, or nothing presented).
	Via string
}

// How a caller proved who it is.
const (
	ViaCertificate = "certificate"
	ViaToken       = "token"
)

// IsLocation says whether the caller is one of the installation's locations.
func (p Principal) IsLocation() bool { return p.Site != "" }

// RoleName is the principal's role as an audit record shows it.
func (p Principal) RoleName() string {
	switch {
	case p.Anonymous:
		return "anonymous"
	case p.IsLocation():
		return "location"
	}
	return p.Role.String()
}

func (p Principal) String() string {
	switch {
	case p.Anonymous:
		return "an anonymous caller (TLS is off)"
	case p.IsLocation():
		return fmt.Sprintf("%q (location %s)", p.Name, p.Site)
	case p.Name == "":
		return "a caller without a certificate or token"
	case p.Role == None:
		return fmt.Sprintf("%q (bound to no role under access:)", p.Name)
	case p.Via == ViaToken:
		return fmt.Sprintf("%q (%s, by token)", p.Name, p.Role)
	}
	return fmt.Sprintf("%q (%s)", p.Name, p.Role)
}

// Resolver turns certificate names into principals.
type Resolver struct {
	tls   bool
	sites map[string]string // certificate name → location
	roles map[string]Role   // certificate name → role
}

// ErrIdentityClash: a name is both a location's certificate and an entry
// of access:.
var ErrIdentityClash = errors.New("an identity is both a location's and a person's")

// NewResolver builds a resolver. siteCNs maps each location to its
// certificate's common name; entries is the topology's access list. With
// tls false every caller is anonymous.
func NewResolver(tls bool, siteCNs map[string]string, entries []config.Access) (*Resolver, error) {
	r := &Resolver{tls: tls, sites: map[string]string{}, roles: map[string]Role{}}
	for site, cn := range siteCNs {
		r.sites[cn] = site
	}
	for _, e := range entries {
		role, ok := ParseRole(e.Role)
		if !ok {
			return nil, fmt.Errorf("access: identity %q has unknown role %q (use viewer, operator or admin)", e.Identity, e.Role)
		}
		if site, clash := r.sites[e.Identity]; clash {
			return nil, fmt.Errorf("%w: %q names the certificate of location %s and is listed under access: as %s; "+
				"locations act only as locations: give the person a certificate of their own", ErrIdentityClash, e.Identity, site, e.Role)
		}
		r.roles[e.Identity] = role
	}
	return r, nil
}

// Resolve returns the principal of a certificate name ("" without TLS).
func (r *Resolver) Resolve(cn string) Principal {
	if !r.tls {
		return Principal{Anonymous: true}
	}
	if cn == "" {
		return Principal{}
	}
	if site, ok := r.sites[cn]; ok {
		return Principal{Name: cn, Site: site, Via: ViaCertificate}
	}
	return Principal{Name: cn, Role: r.roles[cn], Via: ViaCertificate}
}

// TLS says whether callers are known by their credentials; without TLS
// every caller is anonymous.
func (r *Resolver) TLS() bool { return r.tls }

// ErrLocationToken: a token made with a location's certificate.
var ErrLocationToken = errors.New("locations' certificates cannot make tokens")

// ResolveToken returns the principal of a verified token of the
// certificate name cn granting role: the lower of that role and the one
// access: binds cn to now, so that removing a person from access: ends
// their tokens at once. Locations act only with their certificates.
func (r *Resolver) ResolveToken(cn string, role Role) (Principal, error) {
	if !r.tls {
		return Principal{Anonymous: true}, nil
	}
	if site, ok := r.sites[cn]; ok {
		return Principal{}, fmt.Errorf("%w: %q is the certificate of location %s; tokens are for people: make one with your own certificate (siteflip cert operator NAME)", ErrLocationToken, cn, site)
	}
	return Principal{Name: cn, Role: min(role, r.roles[cn]), Via: ViaToken}, nil
}

// Rule is who may call an endpoint, as far as the request's principal
// alone tells. Rules marked "checked by the handler" need more: the body
// (which location asks) or etcd (which location is controller).
type Rule int

// Rules.
const (
	// Public admits every client the TLS layer admitted.
	Public Rule = iota
	// Viewers admits viewers, operators, admins and locations (and, with
	// TLS off, anybody).
	Viewers
	// Operators admits operators and admins; POST /v1/runs raises the bar
	// by action (RunRole).
	Operators
	// Admins admits admins.
	Admins
	// Locations admits any location.
	Locations
	// SelfLocation admits a location asking for itself; the handler checks
	// that the location named in the body is the caller. With TLS off it
	// admits anybody (check warns that TLS is off).
	SelfLocation
	// Controller admits locations; the handler checks that the caller is
	// the elected controller at the term in the request.
	Controller
)

func (r Rule) String() string {
	return [...]string{"anyone", "viewers", "operators", "admins", "locations", "the location itself", "the controller"}[r]
}

// Listener is where an endpoint is served.
type Listener int

// Listeners.
const (
	// API is the agent's address: operators, tools and the controller.
	API Listener = iota
	// Peer is the lease address: only locations complete a handshake
	// there, so other traffic cannot starve the serve lease.
	Peer
	// Both serves the endpoint on both.
	Both
)

// Endpoint is one entry of the table.
type Endpoint struct {
	Pattern  string // method and path, as http.ServeMux takes it
	Rule     Rule
	Listener Listener
	// Audit: the request may change state; it leaves an audit record
	// (refused ones too; for the lease only those refused for who asked
	// or what they sent).
	Audit bool
	// Heavy: the handler reads the whole control plane; such requests
	// are limited in number at a time so that they cannot starve others.
	Heavy bool
}

// Endpoints is every endpoint of the agent, once.
var Endpoints = []Endpoint{
	{Pattern: "GET /healthz", Rule: Public, Listener: Both},
	{Pattern: "GET /v1/status", Rule: Viewers, Heavy: true},
	{Pattern: "GET /metrics", Rule: Viewers},
	{Pattern: "GET /v1/runs", Rule: Viewers, Heavy: true},
	{Pattern: "GET /v1/runs/{id}", Rule: Viewers},
	{Pattern: "GET /v1/audit", Rule: Viewers, Heavy: true},
	{Pattern: "POST /v1/runs", Rule: Operators, Audit: true, Heavy: true},
	// A verdict on a run's approval step (approve, reject).
	{Pattern: "POST /v1/runs/{id}/verdict", Rule: Operators, Audit: true},
	{Pattern: "POST /v1/force", Rule: Admins, Audit: true},
	{Pattern: "POST /v1/steps", Rule: Controller, Audit: true},
	// A copy of a primary's server, for another site's rejoin: the
	// handler checks that the caller is another site of the group.
	{Pattern: "GET /v1/copy/{group}/{resource}", Rule: Locations, Audit: true},
	{Pattern: "POST /v1/drills/{group}/cleanup", Rule: Operators, Audit: true},
	// A person's pause of a group's automatic actions, and its end.
	{Pattern: "POST /v1/groups/{group}/pause", Rule: Operators, Audit: true},
	{Pattern: "POST /v1/groups/{group}/resume", Rule: Operators, Audit: true},
	// A switchover scheduled for later, and its cancellation.
	{Pattern: "POST /v1/scheduled", Rule: Operators, Audit: true},
	{Pattern: "DELETE /v1/scheduled/{group}", Rule: Operators, Audit: true},
	{Pattern: "POST /v1/lease", Rule: SelfLocation, Listener: Peer, Audit: true},
	{Pattern: "GET /v1/members", Rule: Locations},
	{Pattern: "POST /v1/members", Rule: SelfLocation, Audit: true},
	{Pattern: "POST /v1/members/promote", Rule: SelfLocation, Audit: true},
	// The dashboard (docs/design/dashboard.md): the page and its files,
	// which hold no data; its settings; its live feed (long-lived, so
	// not among the heavy: it reads through the agent's shared reader);
	// the lag history; a run's report.
	{Pattern: "GET /{$}", Rule: Public},
	{Pattern: "GET /ui/{path...}", Rule: Public},
	{Pattern: "GET /v1/ui/config", Rule: Viewers},
	{Pattern: "GET /v1/events", Rule: Viewers},
	{Pattern: "GET /v1/lag", Rule: Viewers},
	{Pattern: "GET /v1/runs/{id}/report", Rule: Viewers},
	// What a disaster would do, played against the live state: a read.
	{Pattern: "GET /v1/whatif", Rule: Viewers, Heavy: true},
}

// Lookup returns the endpoint of a pattern.
func Lookup(pattern string) (Endpoint, bool) {
	for _, e := range Endpoints {
		if e.Pattern == pattern {
			return e, true
		}
	}
	return Endpoint{}, false
}

// Allow says whether p may call an endpoint with rule, and if not, why,
// in words for the caller.
func Allow(rule Rule, p Principal) (bool, string) {
	switch rule {
	case Public:
		return true, ""
	case Viewers:
		if p.Anonymous || p.IsLocation() || p.Role >= Viewer {
			return true, ""
		}
		return false, fmt.Sprintf("%s may not read this: bind it to viewer, operator or admin under access:", p)
	case Operators, Admins:
		need := Operator
		if rule == Admins {
			need = Admin
		}
		return AllowRole(need, p)
	case Locations, Controller:
		if p.IsLocation() {
			return true, ""
		}
		if p.Anonymous {
			return false, "this is taken only over mutual TLS from the locations' agents: turn TLS on (tls.ca_file)"
		}
		return false, fmt.Sprintf("only the locations' agents may ask this, not %s", p)
	case SelfLocation:
		if p.IsLocation() || p.Anonymous {
			return true, ""
		}
		return false, fmt.Sprintf("only a location may ask this, for itself, not %s", p)
	}
	return false, "unknown rule"
}

// AllowRole says whether p holds at least role need.
func AllowRole(need Role, p Principal) (bool, string) {
	switch {
	case p.Anonymous:
		return false, "changes need an identity: turn TLS on (tls.ca_file) and use a certificate bound to " + need.String() + " under access:"
	case p.IsLocation():
		return false, fmt.Sprintf("%s acts only as a location; a person's certificate bound to %s under access: is needed", p, need)
	case p.Role < need:
		return false, fmt.Sprintf("%s may not do this: it needs the %s role", p, need)
	}
	return true, ""
}

// RunRole is the role a run needs: a failover that accepts data loss
// beyond max_data_loss is an admin's decision; every other run an
// operator's.
func RunRole(action string, acceptDataLoss bool) Role {
	if action == "failover" && acceptDataLoss {
		return Admin
	}
	return Operator
}
