package script

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/command"
	"github.com/siteflip/siteflip/internal/config"
)

// Settings is the per-site block of a script resource: a command for some
// of the step kinds, and how they run. The caller decodes it strictly
// from YAML and passes it to Prepare.
type Settings struct {
	// The commands, one per step kind: the program and its arguments, or
	// with Shell one command line. A kind left out does nothing.
	Fence   []string `yaml:"fence"`
	CatchUp []string `yaml:"catch-up"`
	Promote []string `yaml:"promote"`
	Rejoin  []string `yaml:"rejoin"`
	Unfence []string `yaml:"unfence"`
	// Drill starts what a drill needs in its bubble; Cleanup removes it.
	Drill   []string `yaml:"drill"`
	Cleanup []string `yaml:"cleanup"`
	// Shell runs each command, one string, with /bin/sh -c.
	Shell bool `yaml:"shell"`
	// Timeout bounds one attempt of a command; default 10m. It is a
	// pointer so that an explicit 0 is told from a missing value.
	Timeout *config.Duration `yaml:"timeout"`
	// Retries is how many more attempts a step makes after a failure;
	// default 0.
	Retries int `yaml:"retries"`
	// Env is added to the commands' environment.
	Env map[string]string `yaml:"env"`
	// Dir is the commands' working directory; default "/". A relative
	// one is relative to the topology's folder.
	Dir string `yaml:"dir"`

	// timeoutLeftOut remembers, for Lint, that SetDefaults chose the
	// timeout.
	timeoutLeftOut bool
}

const (
	defaultTimeout     = 10 * time.Minute
	defaultTimeoutText = "10m"
	defaultDir         = "/"
	// reservedEnv starts the names siteflip sets itself.
	reservedEnv = "SITEFLIP_"
)

// commandField is one step kind's command and its YAML key.
type commandField struct {
	key  string
	argv []string
}

// commands lists every kind's command, set or not, in the order of a
// run.
func (s *Settings) commands() []commandField {
	return []commandField{
		{"fence", s.Fence}, {"catch-up", s.CatchUp}, {"promote", s.Promote}, {"rejoin", s.Rejoin},
		{"unfence", s.Unfence}, {"drill", s.Drill}, {"cleanup", s.Cleanup},
	}
}

// Prepare sets the defaults, makes a relative dir relative to dir (the
// topology's folder) and returns every problem with the settings; nil
// means they are usable. It has config.ResourceType's Prepare shape.
func Prepare(settings any, site, dir string) []config.FieldError {
	s := settings.(*Settings)
	s.SetDefaults()
	if s.Dir != "" && !filepath.IsAbs(s.Dir) && dir != "" {
		s.Dir = filepath.Join(dir, s.Dir)
	}
	return s.Check()
}

// SetDefaults fills the fields left empty.
func (s *Settings) SetDefaults() {
	if s.Timeout == nil {
		d := config.Duration(defaultTimeout)
		s.Timeout = &d
		s.timeoutLeftOut = true
	}
	if s.Dir == "" {
		s.Dir = defaultDir
	}
}

// Check reports every problem with the settings. Call it after
// SetDefaults.
func (s *Settings) Check() []config.FieldError {
	var errs []config.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	set := 0
	for _, c := range s.commands() {
		if c.argv == nil {
			continue
		}
		set++
		if why := command.Check(c.argv, s.Shell); why != "" {
			add(c.key, "%s", why)
		}
	}
	if set == 0 {
		add("", "no command is set: set at least one of fence, catch-up, promote, rejoin, unfence, drill or cleanup, "+
			"e.g. promote: [ansible-playbook, storage.yml, -e, mode=read-write]")
	}
	switch {
	case s.Timeout == nil:
		add("timeout", "is missing: call SetDefaults first (default %s)", defaultTimeoutText)
	case s.Timeout.D() <= 0:
		add("timeout", "must be more than 0: set how long one attempt of a command may take, e.g. 5m")
	}
	if s.Retries < 0 {
		add("retries", "%d is negative: set how many more attempts a failed command gets, e.g. 1 (default 0)", s.Retries)
	}
	names := make([]string, 0, len(s.Env))
	for name := range s.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case !config.EnvName(name):
			add("env", "%q is not an environment variable name: use letters, digits and underscores, e.g. STORAGE_ARRAY", name)
		case strings.HasPrefix(name, reservedEnv):
			add("env", "%s: names starting with %s are siteflip's own, set for every run: choose another name", name, reservedEnv)
		}
	}
	if !filepath.IsAbs(s.Dir) {
		add("dir", "%q is not an absolute path: set the folder the commands run in, e.g. /srv/dr (default /)", s.Dir)
	}
	return errs
}

// Lint warns, when the topology is loaded, about settings that work but
// are better written otherwise. It has config.ResourceType's Lint shape.
func Lint(g *config.Group, settings any) []config.FieldError {
	s := settings.(*Settings)
	var warns []config.FieldError
	if s.timeoutLeftOut {
		warns = append(warns, config.FieldError{Field: "timeout",
			Msg: "a script without a timeout waits " + defaultTimeoutText + " at most per attempt: set timeout"})
	}
	if s.Shell {
		warns = append(warns, config.FieldError{Field: "shell",
			Msg: "names and values are read by a shell: prefer a list"})
	}
	return warns
}
