package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Problem is one thing wrong with a configuration, at a place in its file.
type Problem struct {
	File    string
	Pos     Pos
	Field   string // path of the field, e.g. sites[1].agent.address
	Msg     string
	Warning bool // a lint finding that does not stop siteflip from running
	// Kind sorts warnings for readiness (status.Judge): KindGeography,
	// or "" for any other lint finding.
	Kind string
	// Group is the group the problem concerns, "" when it concerns the
	// whole installation or the locations in Sites.
	Group string
	// Sites are the locations the problem concerns, when it names some.
	Sites []string
}

// KindGeography marks a warning about where the locations are: sites
// closer than min_site_distance, a level that takes out a group.
const KindGeography = "geography"

// String formats the problem as FILE:LINE:COL: field: problem.
func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d: ", p.File, p.Pos.Line, p.Pos.Col)
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors returns the problems that are not warnings.
func Errors(probs []Problem) []Problem {
	var out []Problem
	for _, p := range probs {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

func sortProblems(probs []Problem) {
	sort.SliceStable(probs, func(i, j int) bool {
		a, b := probs[i].Pos, probs[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`)

type validator struct {
	t     *Topology
	probs []Problem
	// undecoded holds the fields whose value could not be decoded: they are
	// reported already, and what decoding left in them is not worth a word.
	undecoded map[string]bool
	// claimed holds, by site and claim, the field of the resource that
	// made it first (ResourceType.Claims).
	claimed map[string]map[string]claimant
}

type claimant struct{ field, group, resource string }

func (v *validator) add(field, format string, args ...any) {
	if v.undecoded[field] {
		return
	}
	v.probs = append(v.probs, Problem{Pos: v.t.pos.lookup(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warn(field, format string, args ...any) {
	v.probs = append(v.probs, Problem{Pos: v.t.pos.lookup(field), Field: field, Msg: fmt.Sprintf(format, args...), Warning: true})
}

func (v *validator) name(field, kind, name string) bool {
	switch {
	case name == "":
		v.add(field, "%s name is missing", kind)
	case !nameRE.MatchString(name):
		hint := ""
		if lower := strings.ToLower(name); nameRE.MatchString(lower) {
			// Names key etcd, certificates (a location's CN is its name)
			// and metrics, where case would split one thing in two.
			hint = fmt.Sprintf(": write %q (names are compared exactly, and a location's certificate CN must be the same)", lower)
		}
		v.add(field, "%s name %q must be lowercase letters, digits, '-' or '_', starting and ending with a letter or digit%s", kind, name, hint)
	default:
		return true
	}
	return false
}

// uniqueName checks name as v.name does, and that no other of seen (name →
// the field where first seen, in scope: "" or ` in group "webshop"`) has
// it; it records it in seen.
func (v *validator) uniqueName(field, kind, name, scope string, seen map[string]string) {
	if !v.name(field, kind, name) {
		return
	}
	if prev, ok := seen[name]; ok {
		v.add(field, "%s %q is defined twice%s (first at %s)", kind, name, scope, prev)
		return
	}
	seen[name] = strings.TrimSuffix(field, ".name")
}

// file checks that a file named by the configuration can be read.
func (v *validator) file(field, path string) {
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err != nil {
		v.add(field, "cannot read %s: %v", path, unwrapPathError(err))
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// validate checks the decoded topology; decoded lists the problems decoding
// found.
func (t *Topology) validate(types map[string]ResourceType, decoded []Problem) []Problem {
	v := &validator{t: t, undecoded: map[string]bool{}, claimed: map[string]map[string]claimant{}}
	for _, p := range decoded {
		v.undecoded[p.Field] = true
	}
	v.coordination()
	v.sites()
	v.locations()
	v.levels()
	v.certificates()
	v.access()
	v.groups(types)
	v.geography() // after levels and groups, whose areas and sites it reads
	return v.probs
}

func (v *validator) coordination() {
	c := v.t.Coordination
	// A 0 is only ever written on purpose (a duration left out has its
	// default), and none of these means anything at 0. probe_timeout may
	// exceed probe_interval: a slow probe delays the next one.
	heartbeat := v.positive("coordination.heartbeat_interval", c.HeartbeatInterval, defaultHeartbeat)
	election := v.positive("coordination.election_timeout", c.ElectionTimeout, defaultElection)
	leaseTTL := v.positive("coordination.lease_ttl", c.LeaseTTL, defaultLeaseTTL)
	v.positive("coordination.probe_interval", c.ProbeInterval, defaultProbeInterval)
	v.positive("coordination.probe_timeout", c.ProbeTimeout, defaultProbeTimeout)
	if heartbeat && election && c.HeartbeatInterval.D()*5 > c.ElectionTimeout.D() {
		v.add("coordination.election_timeout", "must be at least 5 times heartbeat_interval (%s), or members keep starting elections", c.HeartbeatInterval.D())
	}
	// etcd raises a lease's TTL to ceil(1.5 × election timeout) without telling.
	if minTTL := c.ElectionTimeout.D() * 3 / 2; election && leaseTTL && c.LeaseTTL.D() < minTTL {
		v.add("coordination.lease_ttl", "%s is shorter than 1.5 × election_timeout (%s); etcd would silently grant a longer lease", c.LeaseTTL.D(), minTTL)
	}
	if c.ServeLease.D() < 300*time.Millisecond {
		v.add("coordination.serve_lease", "%s is too short: it is renewed every tenth of itself over the network; use 300ms or more", c.ServeLease.D())
	}
	if c.FenceMargin.D() < 100*time.Millisecond {
		v.add("coordination.fence_margin", "%s is too short: it must cover the time to fence a primary; use 100ms or more", c.FenceMargin.D())
	}
	for i, ep := range c.EtcdEndpoints {
		v.url(fmt.Sprintf("coordination.etcd_endpoints[%d]", i), ep, true)
	}
}

// positive reports a duration that is not above zero and says whether it is.
func (v *validator) positive(field string, d *Duration, def time.Duration) bool {
	if d.D() > 0 {
		return true
	}
	v.add(field, "%s: must be above zero; leave it out for the default (%s)", d.D(), def)
	return false
}

// hostPort checks a host:port the agent listens on and says whether it is one.
func (v *validator) hostPort(field, addr string) bool {
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" {
		v.add(field, "%q is not host:port", addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add(field, "port %q is not a number from 1 to 65535", port)
	} else {
		return true
	}
	return false
}

// url checks an etcd URL and returns its host:port.
func (v *validator) url(field, raw string, required bool) string {
	if raw == "" {
		if required {
			v.add(field, "is missing (a URL like https://10.0.0.1:2380)")
		}
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Port() == "" {
		v.add(field, "%q is not a URL like https://10.0.0.1:2380 (scheme http or https, a host and a port)", raw)
		return ""
	}
	if v.t.TLSEnabled() && u.Scheme != "https" {
		v.add(field, "%q uses http but tls.ca_file is set; use https", raw)
	}
	if !v.t.TLSEnabled() && u.Scheme == "https" {
		v.add(field, "%q uses https but tls.ca_file is not set; set it or use http", raw)
	}
	return hostPort(raw)
}

func (v *validator) sites() {
	t := v.t
	if len(t.Sites) == 0 {
		v.add("sites", "no sites: list at least two sites and one witness")
		return
	}
	names := map[string]string{} // name → field where first seen
	addrs := map[string]string{} // host:port → field where first seen
	claim := func(field, addr string) bool {
		if addr == "" {
			return false
		}
		if prev, ok := addrs[addr]; ok {
			v.add(field, "address %s is already used by %s", addr, prev)
			return false
		}
		addrs[addr] = field
		return true
	}
	// Lease addresses nobody wrote are claimed after every written address,
	// so that a clash is reported at the default, which is what to change.
	var defaultLeases []int
	witnesses, workSites := 0, 0
	for i, s := range t.Sites {
		f := fmt.Sprintf("sites[%d]", i)
		v.uniqueName(f+".name", "site", s.Name, "", names)
		switch s.Role {
		case RoleSite:
			workSites++
		case RoleWitness:
			witnesses++
		default:
			v.add(f+".role", "%q is not a role: use site or witness", s.Role)
		}
		if lat := s.Location.Latitude; lat < -90 || lat > 90 {
			v.add(f+".location.latitude", "%v is outside -90..90", lat)
		}
		if lon := s.Location.Longitude; lon < -180 || lon > 180 {
			v.add(f+".location.longitude", "%v is outside -180..180", lon)
		}
		agentOK := false
		if s.Agent.Address == "" {
			v.add(f+".agent.address", "is missing (host:port where this location's agent serves its API)")
		} else {
			// The default lease address of an agent address that is wrong
			// or taken would only repeat the problem.
			agentOK = v.hostPort(f+".agent.address", s.Agent.Address) && claim(f+".agent.address", s.Agent.Address)
		}
		if _, written := t.pos[f+".agent.lease_address"]; written {
			if s.Agent.LeaseAddress == "" {
				v.add(f+".agent.lease_address", "is empty: give a host:port, or leave it out for the agent's port + 1")
			} else if v.hostPort(f+".agent.lease_address", s.Agent.LeaseAddress) {
				claim(f+".agent.lease_address", s.Agent.LeaseAddress)
			}
		} else if agentOK {
			if s.Agent.LeaseAddress == "" {
				v.add(f+".agent", "agent.address has port 65535, so lease_address has no default (port + 1); set lease_address")
			} else {
				defaultLeases = append(defaultLeases, i)
			}
		}
		if t.Embedded() {
			claim(f+".etcd.peer_url", v.url(f+".etcd.peer_url", s.Etcd.PeerURL, true))
			claim(f+".etcd.client_url", v.url(f+".etcd.client_url", s.Etcd.ClientURL, true))
		}
		if b := s.Bubble.Address; b != "" && net.ParseIP(b) == nil {
			v.add(f+".bubble.address", "%q is not an IP address: give the address drill copies listen on at this site", b)
		}
		if n := s.Bubble.Netns; n != "" && (strings.ContainsAny(n, "/ ") || len(n) > 64) {
			v.add(f+".bubble.netns", "%q is not a network namespace name (as `ip netns list` shows them)", n)
		}
		if s.Bubble.Netns != "" && s.Bubble.Address == "" {
			v.add(f+".bubble", "netns is set but address is not: give the address drill copies listen on inside the namespace")
		}
		if t.TLSEnabled() {
			if s.TLS.CertFile == "" || s.TLS.KeyFile == "" {
				v.add(f+".tls", "cert_file and key_file are needed because tls.ca_file is set")
			}
			// The files themselves are checked where they are used: see
			// credentials.go.
		}
	}
	for _, i := range defaultLeases {
		f, addr := fmt.Sprintf("sites[%d].agent.lease_address", i), t.Sites[i].Agent.LeaseAddress
		if prev, ok := addrs[addr]; ok {
			v.add(f, "address %s (the default: agent port + 1) is already used by %s; set lease_address to a free host:port", addr, prev)
			continue
		}
		addrs[addr] = f
	}
	// Three sites or more decide among themselves: a third site tells a
	// lost link between two from a lost site, as a witness would.
	if witnesses == 0 && workSites < 3 {
		v.add("sites", "no witness: add a location with role witness at a third place, or a lost link between two sites cannot be told from a lost site")
	}
	if len(t.Sites) < 3 {
		v.add("sites", "%d location(s): at least three voting locations (two sites and a witness) are needed to keep a quorum when one is lost", len(t.Sites))
	} else if len(t.Sites)%2 == 0 {
		n := len(t.Sites)
		v.warn("sites", "%d voting locations tolerate %d lost location(s), no more than %d would; add or remove one", n, (n-1)/2, n-1)
	}
	if workSites < 2 && len(t.Groups) > 0 {
		v.add("sites", "%d location(s) with role site: a group needs two sites to fail over between", workSites)
	}
	if t.TLSEnabled() {
		// Every machine holds the CA; the operator's files are checked by
		// the command line that presents them.
		v.file("tls.ca_file", t.TLS.CAFile)
		if (t.Operator.CertFile == "") != (t.Operator.KeyFile == "") {
			v.add("operator", "give both cert_file and key_file, or neither")
		}
	} else {
		v.warn("tls", "TLS is off: etcd and agent traffic between locations is neither encrypted nor authenticated; set tls.ca_file and per-site certificates")
	}
}

// access checks the identities bound to roles.
func (v *validator) access() {
	t := v.t
	seen := map[string]string{} // identity → field where first seen
	canRun := false
	for i, a := range t.Access {
		f := fmt.Sprintf("access[%d]", i)
		switch {
		case a.Identity == "":
			v.add(f+".identity", "is missing: give the common name of a person's or program's client certificate")
		case !printable(a.Identity):
			v.add(f+".identity", "%q has characters that are not printable", a.Identity)
		default:
			if prev, ok := seen[a.Identity]; ok {
				v.add(f+".identity", "%q is listed twice (first at %s)", a.Identity, prev)
			} else if _, ok := t.Site(a.Identity); ok {
				// A location's certificate names the location
				// (docs/certificates.md) and acts only as the location.
				v.add(f+".identity", "%q is a location's name, and so its certificate's: give the person or program a certificate of their own (siteflip cert operator NAME)", a.Identity)
			} else {
				seen[a.Identity] = f
			}
		}
		switch a.Role {
		case AccessOperator, AccessAdmin:
			canRun = true
		case AccessViewer:
		case "":
			v.add(f+".role", "is missing: use viewer, operator or admin")
		default:
			v.add(f+".role", "%q is not a role: use viewer, operator or admin", a.Role)
		}
	}
	if t.TLSEnabled() && !canRun {
		v.warn("access", "nobody can start a run: bind a person's certificate name to operator or admin under access")
	}
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func (v *validator) groups(types map[string]ResourceType) {
	t := v.t
	names := map[string]string{}
	for i := range t.Groups {
		g := &t.Groups[i]
		f := fmt.Sprintf("groups[%d]", i)
		v.uniqueName(f+".name", "group", g.Name, "", names)
		groupSites := map[string]bool{}
		for j, sn := range g.Sites {
			s, ok := t.Site(sn)
			switch {
			case groupSites[sn]:
				v.add(fmt.Sprintf("%s.sites[%d]", f, j), "site %q is listed twice", sn)
			case !ok:
				v.add(fmt.Sprintf("%s.sites[%d]", f, j), "site %q does not exist (sites: %s)", sn, strings.Join(t.SiteNames(), ", "))
			case s.Role != RoleSite:
				v.add(fmt.Sprintf("%s.sites[%d]", f, j), "%q is a witness; a group runs only at sites", sn)
			default:
				groupSites[sn] = true
			}
		}
		if len(groupSites) < 2 {
			v.add(f+".sites", "group %q spans %d site(s); it needs two to fail over between", g.Name, len(groupSites))
		}
		switch s, ok := t.Site(g.PreferredSite); {
		case g.PreferredSite == "":
			v.add(f+".preferred_site", "is missing: name the site where %q normally runs", g.Name)
		case !ok:
			v.add(f+".preferred_site", "site %q does not exist (sites: %s)", g.PreferredSite, strings.Join(t.SiteNames(), ", "))
		case s.Role != RoleSite:
			v.add(f+".preferred_site", "%q is a witness; a group runs only at sites", g.PreferredSite)
		case !groupSites[g.PreferredSite]:
			v.add(f+".preferred_site", "%q is not one of the group's sites", g.PreferredSite)
		}
		if g.Policy != PolicyAutomatic && g.Policy != PolicyManual {
			v.add(f+".policy", "%q is not a policy: use automatic or manual", g.Policy)
		}
		v.labels(f, g)
		// max_data_loss, flap_period and flap_confirm may be 0 (nothing may
		// be lost; no damping); negative durations are refused when decoded.
		v.positive(f+".rto_target", g.RTOTarget, defaultRTOTarget)
		v.resources(f, g, groupSites, types)
		v.dataLoss(f, g) // after resources, which sets Resource.Data
		v.drill(f, g, groupSites)
		v.requires(f, g, groupSites)
	}
}

// validSites lists the sites of g that are valid (groupSites), once each,
// in the group's order.
func validSites(g *Group, groupSites map[string]bool) []string {
	var out []string
	for _, sn := range g.Sites {
		if groupSites[sn] && !slices.Contains(out, sn) {
			out = append(out, sn)
		}
	}
	return out
}

// maxLabelLen bounds a label's key and value: they are typed on the
// command line and shown in tables, like Kubernetes' label names.
const maxLabelLen = 63

// labels checks a group's labels. A key is matched as --label KEY=VALUE,
// so it holds no '=' and no blank.
func (v *validator) labels(f string, g *Group) {
	for _, k := range sortedKeys(g.Labels) {
		lf, val := join(f+".labels", k), g.Labels[k]
		switch {
		case k == "":
			v.add(lf, "a label has an empty key: name it, like tier: gold")
			continue
		case !printable(k):
			// Not in the field's path, where it would reach the terminal raw.
			v.probs = append(v.probs, Problem{Pos: v.t.pos.lookup(lf), Field: f + ".labels",
				Msg: fmt.Sprintf("key %q has characters that are not printable", k)})
			continue
		case len(k) > maxLabelLen:
			v.add(lf, "the key is %d bytes long: keep label keys to %d or fewer", len(k), maxLabelLen)
		case strings.ContainsAny(k, "= "):
			v.add(lf, "the key holds '=' or a blank: a label is selected with --label KEY=VALUE, so write the key without them")
		}
		switch {
		case val == "":
			v.add(lf, "the label has no value: give it one, or leave the label out")
		case len(val) > maxLabelLen:
			v.add(lf, "the value is %d bytes long: keep label values to %d or fewer", len(val), maxLabelLen)
		case !printable(val):
			v.add(lf, "the value %q has characters that are not printable", val)
		}
	}
}

// dataLoss warns about a max_data_loss with which no failover goes ahead
// without --accept-data-loss: it must cover serve_lease, the time a cut-off
// primary may still acknowledge writes, unless every standby is synchronous
// (docs/design/safety.md).
func (v *validator) dataLoss(f string, g *Group) {
	var sync, async bool
	for _, r := range g.Resources {
		if !r.Data {
			continue // network resources (bgp, vrf, dns, haproxy) lose no data
		}
		if r.Synchronous {
			sync = true
		} else {
			async = true
		}
	}
	limit, lease := g.MaxDataLoss.D(), v.t.Coordination.ServeLease.D()
	switch {
	case limit == 0 && async && !sync:
		v.warn(f+".max_data_loss", "automatic failover never goes ahead: only a synchronous standby loses nothing; set synchronous: true or a max_data_loss above serve_lease")
	case limit <= lease && async:
		v.warn(f+".max_data_loss", "a cut-off primary acknowledges writes for up to serve_lease before it fences itself, so an asynchronous failover may lose that much: "+
			"automatic failover never goes ahead; raise max_data_loss above serve_lease (%s)", lease)
	}
}

func (v *validator) resources(f string, g *Group, groupSites map[string]bool, types map[string]ResourceType) {
	if len(g.Resources) == 0 {
		v.add(f+".resources", "group %q has no resources", g.Name)
		return
	}
	index := map[string]int{}
	for j := range g.Resources {
		r := &g.Resources[j]
		rf := fmt.Sprintf("%s.resources[%d]", f, j)
		if v.name(rf+".name", "resource", r.Name) {
			if _, dup := index[r.Name]; dup {
				v.add(rf+".name", "resource %q is defined twice in group %q", r.Name, g.Name)
			}
			index[r.Name] = j
		}
		rt, known := types[r.Type]
		switch {
		case r.Synchronous && known && !rt.Synchronous:
			v.add(rf+".synchronous", "%s resources cannot be synchronous (types that can: %s)", r.Type, syncTypes(types))
		case r.Synchronous && len(groupSites) > 2:
			v.add(rf+".synchronous", "group %q spans %d sites; a synchronous resource confirms each commit at one standby, so it needs a group of exactly two sites: "+
				"leave synchronous out (asynchronous standbys at every site) or split the group", g.Name, len(groupSites))
		}
		r.Class = rt.Class
		r.Data = known && rt.Class == ClassData
		r.ComparePositions = rt.ComparePositions
		if !known {
			v.add(rf+".type", "unknown resource type %q (known: %s)", r.Type, typeList(types))
		}
		for _, sn := range sortedKeys(r.Sites) {
			if !groupSites[sn] {
				v.add(rf+".sites."+sn, "%q is not a site of group %q", sn, g.Name)
			}
		}
		r.Settings = map[string]any{}
		for _, sn := range validSites(g, groupSites) {
			node, ok := r.Sites[sn]
			if !ok {
				v.add(rf+".sites", "resource %q is missing at site %q: every site of the group needs its settings", r.Name, sn)
				continue
			}
			if !known {
				continue
			}
			sf := rf + ".sites." + sn
			settings := rt.New()
			pos, probs := DecodeStrict(&node, settings, sf)
			for k, p := range pos {
				v.t.pos[k] = p
			}
			v.probs = append(v.probs, probs...)
			fieldProbs := rt.Prepare(settings, sn, v.t.Dir)
			for _, fe := range fieldProbs {
				v.add(join(sf, fe.Field), "%s", fe.Msg)
			}
			if rt.Lint != nil && len(fieldProbs) == 0 {
				for _, fe := range rt.Lint(g, settings) {
					v.warn(join(sf, fe.Field), "%s", fe.Msg)
				}
			}
			if rt.Claims != nil && len(fieldProbs) == 0 {
				for _, c := range rt.Claims(settings) {
					v.claim(sn, claimant{join(sf, c.Field), g.Name, r.Name}, c)
				}
			}
			r.Settings[sn] = settings
		}
	}
	for j, r := range g.Resources {
		if rt, ok := types[r.Type]; ok && rt.Across != nil && len(r.Settings) > 1 {
			rf := fmt.Sprintf("%s.resources[%d]", f, j)
			byIssue := rt.Across(r.Settings)
			for _, sn := range sortedKeys(byIssue) {
				for _, fe := range byIssue[sn] {
					v.add(join(rf+".sites."+sn, fe.Field), "%s", fe.Msg)
				}
			}
		}
		if r.Priority != 0 && (r.Priority < FirstPriority || r.Priority > LastPriority) {
			v.add(fmt.Sprintf("%s.resources[%d].priority", f, j), "priority %d: use %d (first) to %d (last)", r.Priority, FirstPriority, LastPriority)
		}
		for k, dep := range r.DependsOn {
			df := fmt.Sprintf("%s.resources[%d].depends_on[%d]", f, j, k)
			if dep == r.Name {
				v.add(df, "resource %q depends on itself", r.Name)
			} else if d, ok := index[dep]; !ok {
				v.add(df, "unknown resource %q in group %q", dep, g.Name)
			} else if g.UsesPriorities() && g.Resources[d].EffectivePriority() > r.EffectivePriority() {
				v.add(df, "%s (priority %d) depends on %s (priority %d), which is recovered later: give %s priority %d or less, or %s priority %d or more",
					r.Name, r.EffectivePriority(), dep, g.Resources[d].EffectivePriority(), dep, r.EffectivePriority(), r.Name, g.Resources[d].EffectivePriority())
			}
		}
	}
	if cycle := findCycle(g.Resources, index); cycle != nil {
		v.add(fmt.Sprintf("%s.resources[%d].depends_on", f, index[cycle[0]]), "dependency cycle: %s", strings.Join(cycle, " → "))
		return
	}
	v.stack(f, g)
}

// claim records c, made by resource at site, and reports it if another
// resource made it first: the agent at the site would refuse to start the
// second (a DNS name answered twice on one address).
func (v *validator) claim(site string, by claimant, c Claim) {
	held := v.claimed[site]
	if held == nil {
		held = map[string]claimant{}
		v.claimed[site] = held
	}
	if prev, ok := held[c.What]; ok {
		v.add(by.field, "%s is claimed twice at site %s, by group %s, resource %s (%s) and by group %s, resource %s; the agent there would refuse to start: %s",
			c.What, site, prev.group, prev.resource, prev.field, by.group, by.resource, c.Fix)
		return
	}
	held[c.What] = by
}

// stack warns about a service that does not depend, directly or through
// others, on any database of its group: it would be started as soon as the
// group is activated, before its database accepts writes.
func (v *validator) stack(f string, g *Group) {
	var dbs []string
	deps := map[string][]string{}
	for _, r := range g.Resources {
		deps[r.Name] = r.DependsOn
		if r.Data {
			dbs = append(dbs, r.Name)
		}
	}
	if len(dbs) == 0 {
		return
	}
	for j, r := range g.Resources {
		if r.Class != ClassService {
			continue
		}
		seen := map[string]bool{}
		var walk func(string) bool
		walk = func(n string) bool {
			for _, d := range deps[n] {
				if seen[d] {
					continue
				}
				seen[d] = true
				if slices.Contains(dbs, d) || walk(d) {
					return true
				}
			}
			return false
		}
		if !walk(r.Name) {
			v.warn(fmt.Sprintf("%s.resources[%d].depends_on", f, j), "service %s does not depend on a database of group %s: it is started as soon as the group is activated, before %s accepts writes; add depends_on: [%s]",
				r.Name, g.Name, strings.Join(dbs, " or "), dbs[0])
		}
	}
}

// findCycle returns one cycle in the depends_on graph, as a path that
// ends where it starts, or nil.
func findCycle(rs []Resource, index map[string]int) []string {
	const (
		unseen = iota
		active
		done
	)
	state := make([]int, len(rs))
	var stack []string
	var visit func(i int) []string
	visit = func(i int) []string {
		state[i] = active
		stack = append(stack, rs[i].Name)
		for _, dep := range rs[i].DependsOn {
			j, ok := index[dep]
			if !ok || dep == rs[i].Name {
				continue
			}
			switch state[j] {
			case active:
				for k, n := range stack {
					if n == dep {
						return append(append([]string{}, stack[k:]...), dep)
					}
				}
			case unseen:
				if c := visit(j); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
		return nil
	}
	for i := range rs {
		if state[i] == unseen {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

func typeList(types map[string]ResourceType) string {
	return strings.Join(sortedKeys(types), ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// syncTypes lists the types whose resources can be synchronous.
func syncTypes(types map[string]ResourceType) string {
	var out []string
	for name, rt := range types {
		if rt.Synchronous {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
