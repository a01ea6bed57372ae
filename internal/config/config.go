// Package config owns siteflip's topology file: the sites, the witness, the
// protection groups and their resources. It loads a file with defaults and
// strict decoding (an unknown key is an error) and validates it, reporting
// every problem as FILE:LINE:COL: field: problem. It knows nothing of etcd or
// of any driver: drivers plug in their per-site settings through ResourceType.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is wrapped by the error Load returns for a file with problems.
var ErrInvalid = errors.New("invalid configuration")

// Roles of a location.
const (
	RoleSite    = "site"    // runs workloads
	RoleWitness = "witness" // votes and observes, runs no workloads
)

// Group policies.
const (
	PolicyAutomatic = "automatic"
	PolicyManual    = "manual"
)

// Access roles a person's or program's certificate name can be bound to
// (docs/design/safety.md). Roles nest: admin ⊃ operator ⊃ viewer.
const (
	AccessViewer   = "viewer"   // status, runs, audit, metrics
	AccessOperator = "operator" // switchover, failback, reprotect, failover within max_data_loss
	AccessAdmin    = "admin"    // failover that accepts data loss, failover --force
)

// Topology is a whole siteflip configuration.
type Topology struct {
	// Name names the installation; it keys everything siteflip stores in
	// etcd and is the embedded etcd cluster's token.
	Name         string       `yaml:"name"`
	Coordination Coordination `yaml:"coordination"`
	TLS          TLS          `yaml:"tls"`
	Operator     Credential   `yaml:"operator"`
	// Access binds the names in people's and programs' client certificates
	// to roles; a certificate of the CA that is not listed may do nothing.
	Access []Access `yaml:"access"`
	Sites  []Site   `yaml:"sites"`
	Groups []Group  `yaml:"groups"`
	// MinSiteDistance is how far apart sites, and each site and the
	// witness, should be (check warns below it); nil when the file leaves
	// it out, DefaultMinSiteDistance after Load.
	MinSiteDistance *Distance `yaml:"min_site_distance"`
	// Levels are the disasters the installation plans for (`siteflip
	// whatif --level`), in the file's order.
	Levels []Level `yaml:"levels"`

	// File is the path the topology was read from; Dir is its folder, against
	// which relative paths in the file are resolved.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`
	// Warnings are the lint findings of the file (Problem.Warning), kept
	// so that the agents can show them in each group's readiness.
	Warnings []Problem `yaml:"-"`

	pos positions
}

// Coordination tunes the control plane. Its durations are nil when the
// file leaves them out; Load fills in the defaults, so after Load none is nil.
type Coordination struct {
	// EtcdEndpoints, when set, points every agent at an existing etcd
	// cluster instead of embedding a member per location.
	EtcdEndpoints     []string  `yaml:"etcd_endpoints"`
	HeartbeatInterval *Duration `yaml:"heartbeat_interval"` // embedded etcd raft heartbeat
	ElectionTimeout   *Duration `yaml:"election_timeout"`   // embedded etcd raft election timeout
	LeaseTTL          *Duration `yaml:"lease_ttl"`          // lease of published views and of the controller
	ProbeInterval     *Duration `yaml:"probe_interval"`     // how often an agent probes the other locations
	ProbeTimeout      *Duration `yaml:"probe_timeout"`      // how long one probe may take
	// ServeLease is how long one grant of the right to serve lasts: a
	// location that hears from no other location for this long fences its
	// primaries (see docs/design/fencing.md).
	ServeLease *Duration `yaml:"serve_lease"`
	// FenceMargin is how much longer than ServeLease the other locations
	// wait before they may declare a silent location lost.
	FenceMargin *Duration `yaml:"fence_margin"`
}

// TLS names the certificate authority every location and operator chains to.
// When CAFile is empty, siteflip runs without TLS (and check warns).
type TLS struct {
	CAFile string `yaml:"ca_file"`
}

// Access binds the common name of a client certificate to a role.
type Access struct {
	Identity string `yaml:"identity"`
	Role     string `yaml:"role"` // AccessViewer, AccessOperator or AccessAdmin
}

// Credential is a certificate and key pair.
type Credential struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Site is one location: a site that runs workloads, or the witness.
type Site struct {
	Name     string     `yaml:"name"`
	Role     string     `yaml:"role"`
	Location Location   `yaml:"location"`
	Agent    Agent      `yaml:"agent"`
	Etcd     Etcd       `yaml:"etcd"`
	TLS      Credential `yaml:"tls"`
	// Bubble is where drills run at this site (docs/design/drills.md).
	Bubble Bubble `yaml:"bubble"`
}

// Bubble is a site's isolated place for drills: drill copies listen on
// Address, which production clients never use, or on production's own
// addresses inside the network namespace Netns.
type Bubble struct {
	Address string `yaml:"address"`
	Netns   string `yaml:"netns"`
}

// Location is where a site stands on the map.
type Location struct {
	Latitude  float64 `yaml:"latitude"`
	Longitude float64 `yaml:"longitude"`
}

// Agent is where a location's agent serves its API.
type Agent struct {
	Address string `yaml:"address"` // host:port, listened on and dialled
	// LeaseAddress is the host:port of the location's own listener for the
	// serve lease and the health probes between locations, so that other
	// traffic cannot starve them. Default: Address's host, its port + 1.
	LeaseAddress string `yaml:"lease_address"`
}

// Etcd holds the URLs of a location's embedded etcd member.
type Etcd struct {
	PeerURL   string `yaml:"peer_url"`
	ClientURL string `yaml:"client_url"`
}

// Group is a protection group: services that fail over together.
type Group struct {
	Name          string   `yaml:"name"`
	PreferredSite string   `yaml:"preferred_site"`
	Sites         []string `yaml:"sites"` // default: every location with role site
	Policy        string   `yaml:"policy"`
	// Labels sort groups for people: `--label KEY=VALUE` on the run verbs
	// selects every group that carries it. siteflip itself reads no label.
	Labels map[string]string `yaml:"labels"`
	// MaxDataLoss bounds what a failover without --accept-data-loss may
	// lose; 0 means no acknowledged write may be lost. The durations of a
	// group are nil when the file leaves them out; Load fills in the
	// defaults, and keeps an explicit 0.
	MaxDataLoss *Duration `yaml:"max_data_loss"`
	RTOTarget   *Duration `yaml:"rto_target"`
	// FlapPeriod and FlapConfirm damp flapping: a site lost again within
	// FlapPeriod of its previous loss is failed over only once it has been
	// lost for FlapConfirm without a break (safety.Decide). A FlapPeriod
	// of 0 turns damping off.
	FlapPeriod  *Duration  `yaml:"flap_period"`
	FlapConfirm *Duration  `yaml:"flap_confirm"`
	Resources   []Resource `yaml:"resources"`
	// Drill, when set, has the controller drill the group by itself.
	Drill *DrillSchedule `yaml:"drill"`
	// Requires lists the outside services the group needs wherever it
	// runs, probed from every site.
	Requires []Dependency `yaml:"requires"`
}

// Resource is one thing in a group, handled by the driver named by Type.
type Resource struct {
	Name      string   `yaml:"name"`
	Type      string   `yaml:"type"`
	DependsOn []string `yaml:"depends_on"`
	// Priority (1 first … 5 last), when any resource of its group has
	// one, puts the resource in a priority group: the groups are
	// recovered one after the other, and in each the resources that do
	// not depend on one another run their steps side by side. 0: not
	// set (3 when the group uses priorities; one step at a time, in
	// dependency order, when it does not).
	Priority int `yaml:"priority"`
	// Synchronous makes the standby confirm every commit (types that can).
	Synchronous bool                 `yaml:"synchronous"`
	Sites       map[string]yaml.Node `yaml:"sites"`

	// Settings holds, per site, the driver's decoded settings (after
	// defaults and checks), filled in by Load from Sites.
	Settings map[string]any `yaml:"-"`
	// Class is what the resource is for, as its type declares.
	Class Class `yaml:"-"`
	// Data says the resource holds data (a database, class data): it has a
	// primary and standbys, lag, and must be fenced.
	Data bool `yaml:"-"`
	// ComparePositions is its type's ResourceType.ComparePositions, nil
	// when the type has none.
	ComparePositions func(a, b string) (int, bool) `yaml:"-"`
}

// Class is what resources of a type are for; each is shown and planned in
// its own terms (docs/design/resources.md).
type Class string

// Classes of resource types.
const (
	// ClassData holds data replicated between the sites: a primary, its
	// standbys, lag; it must be fenced.
	ClassData Class = "data"
	// ClassTraffic sends the group's clients to the active site (routes,
	// names, proxies).
	ClassTraffic Class = "traffic"
	// ClassService is a program run at the active site.
	ClassService Class = "service"
	// ClassScript runs an operator's commands at the steps of a run
	// (flip storage from read-only to read-write, register the VMs).
	ClassScript Class = "script"
	// ClassCheck verifies the recovered stack.
	ClassCheck Class = "check"
	// ClassGate waits for a person's approval.
	ClassGate Class = "gate"
)

// Stepped says whether resources of class c take a run's steps (fence,
// catch-up, promote, rejoin; start and teardown in a drill): all but the
// checks, which are run, and the approvals, which the controller awaits.
func (c Class) Stepped() bool {
	return c != ClassCheck && c != ClassGate
}

// CatchesUp says whether resources of class c take a catch-up step in a
// planned move: data, whose standby must replay what the fenced primary
// wrote, and scripts, which may have a catch-up command. For the others
// the step would do nothing but cost a round trip.
func (c Class) CatchesUp() bool {
	return c == ClassData || c == ClassScript
}

// Priorities of a resource.
const (
	FirstPriority   = 1
	LastPriority    = 5
	DefaultPriority = 3
)

// EffectivePriority is r's priority group when its group uses
// priorities.
func (r Resource) EffectivePriority() int {
	if r.Priority == 0 {
		return DefaultPriority
	}
	return r.Priority
}

// UsesPriorities says whether any resource of g has a priority.
func (g *Group) UsesPriorities() bool {
	for _, r := range g.Resources {
		if r.Priority != 0 {
			return true
		}
	}
	return false
}

// Observed says whether resources of class c are observed at their sites
// (and shown there in status); checks, scripts and approvals act only in
// runs and drills, and the runs show what they did.
func (c Class) Observed() bool {
	return c != ClassCheck && c != ClassScript && c != ClassGate
}

// ResourceType is what a resource type tells the loader about itself.
type ResourceType struct {
	// Class is what resources of this type are for (Resource.Class).
	Class Class
	// Synchronous says its resources can be synchronous (a standby that
	// confirms every commit).
	Synchronous bool
	// New returns a pointer to a fresh, zero settings struct.
	New func() any
	// Prepare sets defaults for the site, resolves relative paths against
	// dir and returns the problems of the settings.
	Prepare func(settings any, site, dir string) []FieldError
	// Across, when set, checks the settings of all sites together (after
	// Prepare) and returns problems keyed by site.
	Across func(bySite map[string]any) map[string][]FieldError
	// Lint, when set, returns warnings about one site's settings in the
	// light of its group (a DNS TTL longer than the group's RTO target).
	Lint func(g *Group, settings any) []FieldError
	// Claims, when set, returns what one site's settings hold alone at
	// their site (after Prepare, when it found no problem): no other
	// resource, of this group or another, may make the same claim at the
	// same site.
	Claims func(settings any) []Claim
	// ComparePositions, when set, compares two replication positions of
	// a data resource as its standbys report them (status.ResourceView.LSN,
	// on one timeline): negative when a is behind b, 0 when equal,
	// positive when ahead. ok is false when the two cannot be compared
	// (unparsable, or ahead of each other in different ways). A failover
	// with more than one candidate picks the most advanced standby by it.
	ComparePositions func(a, b string) (cmp int, ok bool)
}

// Claim is something one resource holds alone at its site, such as a
// name on the address where the agent answers it.
type Claim struct {
	Field string // yaml key the claim comes from, where a clash is reported
	What  string // the claim, equal for equal claims: "dns name db.example. on 10.0.0.1:53"
	Fix   string // what to do about a clash: "give one of them another name"
}

// FieldError is a driver's complaint about one field of its settings.
type FieldError struct {
	Field string // yaml key
	Msg   string
}

// Duration is a time.Duration written as "1.5s", "250ms" or "2m". Settings
// that must tell a value left out from an explicit 0 hold a *Duration.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		// A TypeError lets yaml go on decoding the rest of the file.
		return &yaml.TypeError{Errors: []string{err.Error()}}
	}
	*d = Duration(v)
	return nil
}

func (d *Duration) check(s string) error {
	_, err := parseDuration(s)
	return err
}

func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write it like 500ms, 5s or 2m)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return v, nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the duration as a time.Duration, 0 for nil.
func (d *Duration) D() time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// Load reads, decodes and validates the topology at path. types lists the
// resource types drivers provide. The error lists every problem, one a line.
func Load(path string, types map[string]ResourceType) (*Topology, error) {
	t, probs, err := Check(path, types)
	if err != nil {
		return nil, err
	}
	if errs := Errors(probs); len(errs) > 0 {
		lines := make([]string, len(errs))
		for i, p := range errs {
			lines[i] = p.String()
		}
		return nil, fmt.Errorf("%w:\n%s", ErrInvalid, strings.Join(lines, "\n"))
	}
	return t, nil
}

// Check reads and decodes the topology at path and returns it with every
// problem and warning found. err is set only when the file cannot be read or
// is not YAML at all.
func Check(path string, types map[string]ResourceType) (*Topology, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read configuration: %w (give the file with --config or $SITEFLIP_CONFIG)", err)
	}
	t, probs := Parse(path, data, types)
	return t, probs, nil
}

// Parse decodes and validates data as if read from the file named path.
func Parse(path string, data []byte, types map[string]ResourceType) (*Topology, []Problem) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	t := &Topology{File: path, Dir: filepath.Dir(abs)}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 0
		fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d", &line)
		return t, []Problem{{File: path, Pos: Pos{line, 1}, Msg: cleanYAMLError(err)}}
	}
	if doc.Kind == 0 {
		return t, []Problem{{File: path, Pos: Pos{1, 1}, Msg: "the file is empty; it needs at least sites and groups"}}
	}
	if p := checkAliases(&doc); p != nil {
		p.File = path
		return t, []Problem{*p}
	}
	pos, probs := DecodeStrict(&doc, t, "")
	t.pos = pos
	t.setDefaults()
	probs = append(probs, t.validate(types, probs)...)
	for i := range probs {
		probs[i].File = path
	}
	sortProblems(probs)
	for _, p := range probs {
		if p.Warning {
			t.Warnings = append(t.Warnings, p)
		}
	}
	return t, probs
}

// Defaults that validation messages name.
const (
	defaultHeartbeat     = 100 * time.Millisecond
	defaultElection      = time.Second
	defaultLeaseTTL      = 3 * time.Second
	defaultProbeInterval = 500 * time.Millisecond
	defaultProbeTimeout  = time.Second
	defaultRTOTarget     = 30 * time.Second
)

func (t *Topology) setDefaults() {
	if t.Name == "" {
		t.Name = "siteflip"
	}
	c := &t.Coordination
	// Only a duration left out gets its default: an explicit 0 is kept (and
	// validated).
	def := func(d **Duration, v time.Duration) {
		if *d == nil {
			*d = new(Duration(v))
		}
	}
	def(&c.HeartbeatInterval, defaultHeartbeat)
	def(&c.ElectionTimeout, defaultElection)
	def(&c.LeaseTTL, defaultLeaseTTL)
	def(&c.ProbeInterval, defaultProbeInterval)
	def(&c.ProbeTimeout, defaultProbeTimeout)
	def(&c.ServeLease, 400*time.Millisecond)
	def(&c.FenceMargin, 250*time.Millisecond)
	for i := range t.Sites {
		s := &t.Sites[i]
		if s.Role == "" {
			s.Role = RoleSite
		}
		if s.Agent.LeaseAddress == "" {
			s.Agent.LeaseAddress = defaultLeaseAddress(s.Agent.Address)
		}
	}
	for i := range t.Groups {
		g := &t.Groups[i]
		if g.Policy == "" {
			g.Policy = PolicyAutomatic
		}
		if len(g.Sites) == 0 {
			seen := map[string]bool{}
			for _, s := range t.Sites {
				if s.Role == RoleSite && !seen[s.Name] {
					seen[s.Name] = true
					g.Sites = append(g.Sites, s.Name)
				}
			}
		}
		def(&g.MaxDataLoss, 5*time.Second)
		def(&g.RTOTarget, defaultRTOTarget)
		def(&g.FlapPeriod, 10*time.Minute)
		def(&g.FlapConfirm, 10*time.Second)
		t.drillDefaults(g)
	}
	t.riskDefaults()
	t.resolve(&t.TLS.CAFile)
	t.resolve(&t.Operator.CertFile)
	t.resolve(&t.Operator.KeyFile)
	for i := range t.Sites {
		t.resolve(&t.Sites[i].TLS.CertFile)
		t.resolve(&t.Sites[i].TLS.KeyFile)
	}
}

// defaultLeaseAddress is the host of the agent's address with the next
// port, or "" when the agent's address has no port that has a next one
// (validation reports that).
func defaultLeaseAddress(agent string) string {
	host, port, err := net.SplitHostPort(agent)
	if err != nil || host == "" {
		return ""
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n >= 65535 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1))
}

// resolve makes a relative path in the file relative to the file's folder.
func (t *Topology) resolve(p *string) {
	if *p != "" && !filepath.IsAbs(*p) {
		*p = filepath.Join(t.Dir, *p)
	}
}

// Site returns the location named name.
func (t *Topology) Site(name string) (*Site, bool) {
	for i := range t.Sites {
		if t.Sites[i].Name == name {
			return &t.Sites[i], true
		}
	}
	return nil, false
}

// Group returns the group named name.
func (t *Topology) Group(name string) (*Group, bool) {
	for i := range t.Groups {
		if t.Groups[i].Name == name {
			return &t.Groups[i], true
		}
	}
	return nil, false
}

// RoleOf returns the role bound to a certificate name under access.
func (t *Topology) RoleOf(identity string) (string, bool) {
	for _, a := range t.Access {
		if a.Identity == identity {
			return a.Role, true
		}
	}
	return "", false
}

// SiteNames lists every location's name in file order.
func (t *Topology) SiteNames() []string {
	names := make([]string, len(t.Sites))
	for i, s := range t.Sites {
		names[i] = s.Name
	}
	return names
}

// TLSEnabled says whether the locations talk over mutual TLS.
func (t *Topology) TLSEnabled() bool { return t.TLS.CAFile != "" }

// Embedded says whether agents embed the etcd members (the default) rather
// than use an existing cluster.
func (t *Topology) Embedded() bool { return len(t.Coordination.EtcdEndpoints) == 0 }

// ClientEndpoints lists the etcd client URLs of every location.
func (t *Topology) ClientEndpoints() []string {
	if !t.Embedded() {
		return t.Coordination.EtcdEndpoints
	}
	eps := make([]string, 0, len(t.Sites))
	for _, s := range t.Sites {
		eps = append(eps, s.Etcd.ClientURL)
	}
	return eps
}

// hostPort returns the host:port of a URL, for duplicate detection.
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(host, port)
}

// EnvName says whether s can name an environment variable (letters, digits
// and underscores, not starting with a digit): settings that read a secret
// from the environment check it with this.
func EnvName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// Hosts lists, once each and in file order, the hosts (IP addresses or DNS
// names) at which the other locations reach location s: those of its agent
// address, its lease address and, when t embeds etcd, its etcd URLs. The
// location's certificate must be valid for each of them.
func (t *Topology) Hosts(s *Site) []string {
	var hosts []string
	add := func(h string) {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, a := range []string{s.Agent.Address, s.Agent.LeaseAddress} {
		if h, _, err := net.SplitHostPort(a); err == nil {
			add(h)
		}
	}
	if t.Embedded() {
		for _, raw := range []string{s.Etcd.PeerURL, s.Etcd.ClientURL} {
			if u, err := url.Parse(raw); err == nil {
				add(u.Hostname())
			}
		}
	}
	return hosts
}
