package service

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/command"
	"github.com/siteflip/siteflip/internal/config"
)

// Settings is the per-site block of a service resource: exactly one of
// Unit or the three commands Start, Stop and Status. The caller decodes it
// strictly from YAML and passes it to Prepare.
type Settings struct {
	// Unit is a systemd unit: started with systemctl start, stopped with
	// systemctl stop, running when systemctl is-active --quiet says so.
	Unit string `yaml:"unit"`
	// Start starts the program and returns once it is started; Stop
	// stops it; Status exits 0 when it runs and non-zero when it does
	// not. Each is a program and its arguments, or with Shell one string
	// that /bin/sh -c runs; each must be idempotent.
	Start  []string `yaml:"start"`
	Stop   []string `yaml:"stop"`
	Status []string `yaml:"status"`
	// Shell runs every command of the block (health.command and the
	// drill's too) as one string given to /bin/sh -c.
	Shell bool `yaml:"shell"`
	// Health, when set, is what proves the service serves: promotion
	// waits for it.
	Health *Health `yaml:"health"`
	// StartTimeout bounds a promotion: start, then status running and
	// health passing; default 60s. StopTimeout bounds a stop and its
	// verification; default 30s. Pointers tell an explicit 0 from a
	// missing value.
	StartTimeout *config.Duration `yaml:"start_timeout"`
	StopTimeout  *config.Duration `yaml:"stop_timeout"`
	// StopOnLeaseLoss stops the service as soon as its site's serve
	// lease runs out; default true.
	StopOnLeaseLoss *bool `yaml:"stop_on_lease_loss"`
	// Drill, when set, runs a copy of the service in a drill's bubble.
	Drill *Drill `yaml:"drill"`
}

// Health is the service's health probe: exactly one of HTTP, TCP and
// Command, run once within Timeout.
type Health struct {
	HTTP *HTTP `yaml:"http"`
	TCP  *TCP  `yaml:"tcp"`
	// Command passes when it exits 0.
	Command []string `yaml:"command"`
	// Timeout bounds one probe; default 2s.
	Timeout *config.Duration `yaml:"timeout"`
}

// HTTP sends GET to URL (no redirect followed, no proxy) and expects
// Status (default 200) and, when Body is set, a body matching that
// regular expression (Go syntax).
type HTTP struct {
	URL    string `yaml:"url"`
	Status int    `yaml:"status"`
	Body   string `yaml:"body"`
}

// TCP connects to Address (host:port) and closes the connection.
type TCP struct {
	Address string `yaml:"address"`
}

// Drill starts and stops a copy of the service in a drill's bubble. The
// commands get SITEFLIP_BUBBLE_ADDRESS, SITEFLIP_BUBBLE_NETNS (empty
// without a namespace: then the copy must listen on the address only)
// and SITEFLIP_RUN in their environment; both are required together.
type Drill struct {
	Start []string `yaml:"start"`
	Stop  []string `yaml:"stop"`
}

const (
	defaultStartTimeout  = 60 * time.Second
	defaultStopTimeout   = 30 * time.Second
	defaultHealthTimeout = 2 * time.Second
	defaultHTTPStatus    = 200
)

// Prepare sets the defaults and returns every problem with the settings;
// nil means they are usable. It has config.ResourceType's Prepare shape.
func Prepare(settings any, site, dir string) []config.FieldError {
	s := settings.(*Settings)
	s.SetDefaults()
	return s.Check()
}

// Lint warns, when the topology is loaded, about a service that nothing
// proves healthy. It has config.ResourceType's Lint shape.
func Lint(g *config.Group, settings any) []config.FieldError {
	if settings.(*Settings).Health == nil {
		return []config.FieldError{{Field: "health",
			Msg: "a service without a health probe is promoted as soon as its status says running: add health (http, tcp or command)"}}
	}
	return nil
}

// SetDefaults fills the fields left empty.
func (s *Settings) SetDefaults() {
	duration := func(d time.Duration) *config.Duration { v := config.Duration(d); return &v }
	if s.StartTimeout == nil {
		s.StartTimeout = duration(defaultStartTimeout)
	}
	if s.StopTimeout == nil {
		s.StopTimeout = duration(defaultStopTimeout)
	}
	if s.StopOnLeaseLoss == nil {
		yes := true
		s.StopOnLeaseLoss = &yes
	}
	if h := s.Health; h != nil {
		if h.Timeout == nil {
			h.Timeout = duration(defaultHealthTimeout)
		}
		if h.HTTP != nil && h.HTTP.Status == 0 {
			h.HTTP.Status = defaultHTTPStatus
		}
	}
}

// unitRE is a systemd unit name, which may not start with a dash (it
// would be read as an option of systemctl).
var unitRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]*$`)

// Check reports every problem with the settings. Call it after
// SetDefaults.
func (s *Settings) Check() []config.FieldError {
	var errs []config.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	argv := func(field string, v []string) {
		if why := command.Check(v, s.Shell); why != "" {
			add(field, "%s", why)
		}
	}
	cmds := []struct {
		field string
		v     []string
		what  string
	}{
		{"start", s.Start, "the command that starts the service and returns, e.g. [systemctl, start, app]"},
		{"stop", s.Stop, "the command that stops the service, e.g. [systemctl, stop, app]"},
		{"status", s.Status, "the command that exits 0 when the service runs, e.g. [pgrep, -x, app]"},
	}
	var set []string
	for _, c := range cmds {
		if c.v != nil {
			set = append(set, c.field)
		}
	}
	switch {
	case s.Unit != "" && len(set) > 0:
		add(set[0], "unit and %s are both set: run the service by a systemd unit (unit) or by start, stop and status commands, not both", set[0])
	case s.Unit != "":
		if !unitRE.MatchString(s.Unit) {
			add("unit", "%q is not a systemd unit name: write the unit as systemctl names it, e.g. webshop-app.service", s.Unit)
		}
	case len(set) == 0:
		add("unit", "no way to run the service is set: set unit (a systemd unit, e.g. webshop-app.service) or the three commands start, stop and status")
	default:
		for _, c := range cmds {
			if c.v == nil {
				add(c.field, "is required with %s: set %s", strings.Join(set, " and "), c.what)
				continue
			}
			argv(c.field, c.v)
		}
	}
	if s.StartTimeout.D() <= 0 {
		add("start_timeout", "must be more than 0: set how long a start may take until the service runs and is healthy, e.g. 60s")
	}
	if s.StopTimeout.D() <= 0 {
		add("stop_timeout", "must be more than 0: set how long a stop may take until status says stopped, e.g. 30s")
	}
	if h := s.Health; h != nil {
		s.checkHealth(h, add, argv)
	}
	if d := s.Drill; d != nil {
		switch {
		case d.Start == nil && d.Stop == nil:
			add("drill.start", "is required in drill: set the command that starts a copy of the service in the bubble, or leave drill out")
		case d.Start == nil:
			add("drill.start", "is required with drill.stop: set the command that starts a copy of the service in the bubble")
		case d.Stop == nil:
			add("drill.stop", "is required with drill.start: set the command that stops the drill's copy, or the copy outlives the drill")
		}
		if d.Start != nil {
			argv("drill.start", d.Start)
		}
		if d.Stop != nil {
			argv("drill.stop", d.Stop)
		}
	}
	return errs
}

func (s *Settings) checkHealth(h *Health, add func(field, format string, args ...any), argv func(field string, v []string)) {
	var kinds []string
	if h.HTTP != nil {
		kinds = append(kinds, "http")
	}
	if h.TCP != nil {
		kinds = append(kinds, "tcp")
	}
	if h.Command != nil {
		kinds = append(kinds, "command")
	}
	switch len(kinds) {
	case 0:
		add("health", "no probe is set: set one of http, tcp or command, or leave health out")
	case 1:
	case 2:
		add("health."+kinds[1], "%s and %s are both set: a health probe asks one question; keep one", kinds[0], kinds[1])
	default:
		add("health."+kinds[1], "http, tcp and command are all set: a health probe asks one question; keep one")
	}
	if h.Timeout.D() <= 0 {
		add("health.timeout", "must be more than 0: set how long one probe may take, e.g. 2s")
	}
	if p := h.HTTP; p != nil {
		if msg := checkURL(p.URL); msg != "" {
			add("health.http.url", "%s", msg)
		}
		if p.Status < 100 || p.Status > 599 {
			add("health.http.status", "%d is not an HTTP status: set the status a healthy service answers, from 100 to 599 (default 200)", p.Status)
		}
		if p.Body != "" {
			if _, err := regexp.Compile(p.Body); err != nil {
				add("health.http.body", "%q is not a regular expression (%v): write one in Go's syntax, e.g. ^ok", p.Body, err)
			}
		}
	}
	if p := h.TCP; p != nil {
		if msg := checkHostPort(p.Address); msg != "" {
			add("health.tcp.address", "%s", msg)
		}
	}
	if h.Command != nil {
		argv("health.command", h.Command)
	}
}

// checkURL returns "" for a usable http or https URL, else what is wrong.
func checkURL(raw string) string {
	const example = "e.g. http://127.0.0.1:8080/healthz"
	if raw == "" {
		return "is required: set the URL to GET, " + example
	}
	if strings.ContainsAny(raw, "{}") {
		return fmt.Sprintf("%q has a brace: a service's probe takes no placeholders; write the address in full, %s (a literal brace is %%7B or %%7D)", raw, example)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URL: write %s", raw, example)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q is not an http or https URL: write %s", raw, example)
	case u.Host == "":
		return fmt.Sprintf("%q has no host: write %s", raw, example)
	}
	return ""
}

// checkHostPort returns "" for host:port, else what is wrong.
func checkHostPort(raw string) string {
	if raw == "" {
		return "is required: set the host:port to connect to, e.g. 127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(raw)
	if err != nil || host == "" {
		return fmt.Sprintf("%q is not host:port: write e.g. 127.0.0.1:8080 or [::1]:8080", raw)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Sprintf("%q has port %q: set a port from 1 to 65535", raw, port)
	}
	return ""
}
