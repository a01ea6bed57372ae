package script

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/command"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
)

// Type is the script resource type: class script.
type Type struct{}

var (
	_ resource.Steps  = Type{}
	_ resource.Drills = Type{}
	_ resource.Actor  = (*actor)(nil)
	_ resource.InRun  = (*actor)(nil)
	_ resource.Drill  = (*drill)(nil)
	_ resource.InRun  = (*drill)(nil)
)

func (Type) Name() string { return "script" }

// Config decodes and checks a site's settings.
func (Type) Config() config.ResourceType {
	return config.ResourceType{Class: config.ClassScript, New: func() any { return &Settings{} }, Prepare: Prepare, Lint: Lint}
}

const (
	// maxOutput is what a step keeps of each output stream of its
	// command: the run stores it.
	maxOutput = 2 << 10
	// retryPause separates two attempts of a command.
	retryPause = time.Second
	// outputTook is how long a step's command took, all attempts.
	outputTook = "took"
	// outputAttempts is how many attempts it took, when more than one.
	outputAttempts = "attempts"
)

// Actor returns the script r of group g at site, which runs the command
// of each step kind.
func (Type) Actor(g *config.Group, r *config.Resource, site string) (resource.Actor, error) {
	s, err := newScript(g, r, site)
	if err != nil {
		return nil, err
	}
	return &actor{s}, nil
}

// Drill returns the script r's part of a drill at site: the drill
// command starts it, the cleanup command tears it down.
func (Type) Drill(g *config.Group, r *config.Resource, site string, b resource.Bubble) (resource.Drill, error) {
	s, err := newScript(g, r, site)
	if err != nil {
		return nil, err
	}
	s.runID = b.Run
	return &drill{script: s, b: b}, nil
}

// script runs the commands of one script resource at one site.
type script struct {
	group, name, site string
	settings          *Settings
	// pause separates two attempts (retryPause; tests shorten it).
	pause time.Duration
	// runID, when set, is the run's ID whatever the script is told (a
	// drill's is its bubble's).
	runID string

	mu   sync.Mutex
	info resource.RunInfo
	told bool
}

func newScript(g *config.Group, r *config.Resource, site string) (*script, error) {
	s, ok := r.Settings[site].(*Settings)
	if !ok {
		return nil, fmt.Errorf("group %s, script %s: no settings at site %s", g.Name, r.Name, site)
	}
	return &script{group: g.Name, name: r.Name, site: site, settings: s, pause: retryPause}, nil
}

// InRun takes the run the next step belongs to, which the step's command
// is told in its environment.
func (s *script) InRun(info resource.RunInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info, s.told = info, true
}

// step is one step kind's command as a step runs it.
type step struct {
	key  string    // its YAML key, as errors and outputs name it
	kind plan.Kind // the plan's step kind, when the script was not told
	argv []string
}

// env is the environment a step's command gets besides the agent's: the
// operator's env, the run (what is known of it when the script was not
// told), then extra (NAME=value).
func (s *script) env(kind plan.Kind, extra ...string) []string {
	s.mu.Lock()
	info, told := s.info, s.told
	s.mu.Unlock()
	if info.Group == "" {
		info.Group = s.group
	}
	if info.Site == "" {
		info.Site = s.site
	}
	if info.Step == "" {
		info.Step = string(kind)
	}
	if s.runID != "" {
		info.Run = s.runID
	}
	epoch := ""
	if told {
		epoch = strconv.FormatInt(info.Epoch, 10)
	}
	names := make([]string, 0, len(s.settings.Env))
	for name := range s.settings.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	env := make([]string, 0, len(names)+8+len(extra))
	for _, name := range names {
		env = append(env, name+"="+s.settings.Env[name])
	}
	// Every variable is set, empty when unknown, so that none is
	// inherited from the agent's own environment.
	env = append(env,
		"SITEFLIP_GROUP="+info.Group,
		"SITEFLIP_ACTION="+info.Action,
		"SITEFLIP_RUN="+info.Run,
		"SITEFLIP_FROM="+info.From,
		"SITEFLIP_TO="+info.To,
		"SITEFLIP_EPOCH="+epoch,
		"SITEFLIP_SITE="+info.Site,
		"SITEFLIP_STEP="+info.Step,
	)
	return append(env, extra...)
}

// runStep runs a step's command, again after a failure as many times as the
// settings allow. A step without a command does nothing and says so.
func (s *script) runStep(ctx context.Context, st step, extra ...string) (map[string]string, error) {
	if st.argv == nil {
		return map[string]string{resource.OutputSkipped: fmt.Sprintf("no %s command at %s", st.key, s.site)}, nil
	}
	c := command.Command{
		Argv:      st.argv,
		Shell:     s.settings.Shell,
		Env:       s.env(st.kind, extra...),
		Dir:       s.settings.Dir,
		Timeout:   s.settings.Timeout.D(),
		MaxOutput: maxOutput,
		Workload:  true,
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		res, err := command.Run(ctx, c)
		if err == nil {
			out := map[string]string{
				resource.OutputStdout: res.Stdout,
				resource.OutputStderr: res.Stderr,
				outputTook:            time.Since(start).Round(time.Millisecond).String(),
			}
			if attempt > 1 {
				out[outputAttempts] = strconv.Itoa(attempt)
			}
			return out, nil
		}
		if attempt > s.settings.Retries || !s.wait(ctx) {
			return nil, s.failed(st, attempt, err)
		}
	}
}

// wait pauses between two attempts; false when ctx ends first.
func (s *script) wait(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(s.pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// failed is the error of a step whose last attempt failed with err.
func (s *script) failed(st step, attempts int, err error) error {
	what := st.key
	if attempts > 1 {
		what = fmt.Sprintf("%s (%d attempts)", st.key, attempts)
	}
	return fmt.Errorf("group %s, script %s at %s: %s: %w; the step is run again after a controller loss, so the command must be idempotent",
		s.group, s.name, s.site, what, err)
}

// actor runs the script's commands at the recovery steps.
type actor struct{ *script }

// Fence runs the fence command.
func (a *actor) Fence(ctx context.Context) (map[string]string, error) {
	return a.runStep(ctx, step{"fence", plan.Fence, a.settings.Fence})
}

// CatchUp runs the catch-up command.
func (a *actor) CatchUp(ctx context.Context, fenced map[string]string) error {
	_, err := a.runStep(ctx, step{"catch-up", plan.CatchUp, a.settings.CatchUp})
	return err
}

// Promote runs the promote command.
func (a *actor) Promote(ctx context.Context) (map[string]string, error) {
	return a.runStep(ctx, step{"promote", plan.Promote, a.settings.Promote})
}

// Rejoin runs the rejoin command, told the primary's site in
// SITEFLIP_PRIMARY.
func (a *actor) Rejoin(ctx context.Context, primarySite string) (map[string]string, error) {
	return a.runStep(ctx, step{"rejoin", plan.Rejoin, a.settings.Rejoin}, "SITEFLIP_PRIMARY="+primarySite)
}

// Unfence runs the unfence command.
func (a *actor) Unfence(ctx context.Context) error {
	_, err := a.runStep(ctx, step{"unfence", plan.Unfence, a.settings.Unfence})
	return err
}

// drill runs the script's drill and cleanup commands in a drill.
type drill struct {
	*script
	b resource.Bubble
}

// Clone does nothing: a script holds no data.
func (d *drill) Clone(context.Context) (map[string]string, error) {
	return map[string]string{resource.OutputSkipped: "a script holds no data"}, nil
}

// Start runs the drill command, told the bubble.
func (d *drill) Start(ctx context.Context) (map[string]string, error) {
	return d.runStep(ctx, step{"drill", plan.Start, d.settings.Drill}, d.bubbleEnv()...)
}

// Teardown runs the cleanup command, told the bubble.
func (d *drill) Teardown(ctx context.Context) error {
	_, err := d.runStep(ctx, step{"cleanup", plan.Teardown, d.settings.Cleanup}, d.bubbleEnv()...)
	return err
}

// Leftovers finds none: what the drill command made is its cleanup
// command's to find.
func (d *drill) Leftovers() ([]string, error) { return nil, nil }

// bubbleEnv tells a drill's commands where the drill runs.
func (d *drill) bubbleEnv() []string {
	return []string{
		"SITEFLIP_BUBBLE_ADDRESS=" + d.b.Address,
		"SITEFLIP_BUBBLE_NETNS=" + d.b.Netns,
	}
}
