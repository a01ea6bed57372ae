package service

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/siteflip/siteflip/internal/command"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/check"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// Type is the service resource type: class service.
type Type struct{}

var (
	_ resource.Type     = Type{}
	_ resource.Observes = Type{}
	_ resource.Steps    = Type{}
	_ resource.Yields   = Type{}
	_ resource.Drills   = Type{}
)

func (Type) Name() string { return "service" }

// Config decodes and checks a site's settings.
func (Type) Config() config.ResourceType {
	return config.ResourceType{Class: config.ClassService, New: func() any { return &Settings{} }, Prepare: Prepare, Lint: Lint}
}

// Step outputs of a service.
const (
	// OutputStopped is "true" once a stop is verified (Fence, Rejoin).
	OutputStopped = "stopped"
	// OutputHealth is what the health probe saw when a promotion was
	// verified.
	OutputHealth = "health"
)

const (
	// firstPoll and pollInterval are how soon a step asks status (and
	// the probe) again while it waits for the service to stop or to run
	// healthy: soon at first, as most services are there within a few
	// tries and every try in a switchover is part of its gap, then less
	// often, doubling up to pollInterval.
	firstPoll    = 20 * time.Millisecond
	pollInterval = 200 * time.Millisecond
	// statusTimeout bounds one run of the status command.
	statusTimeout = 10 * time.Second
)

// service is one service resource at one site.
type service struct {
	group, resource string
	where           string // group, service and site, for errors
	s               *Settings
	start, stop     command.Command
	status          command.Command
}

func newService(g *config.Group, r *config.Resource, site string) (*service, error) {
	s, ok := r.Settings[site].(*Settings)
	if !ok {
		return nil, fmt.Errorf("group %s, service %s: no settings at site %s", g.Name, r.Name, site)
	}
	sv := &service{group: g.Name, resource: r.Name, s: s,
		where: fmt.Sprintf("group %s, service %s at %s", g.Name, r.Name, site)}
	sv.start, sv.stop, sv.status = commands(s)
	return sv, nil
}

// commands returns how s starts, stops and asks about the service: its
// own commands, or systemctl's for a unit.
func commands(s *Settings) (start, stop, status command.Command) {
	if s.Unit != "" {
		return command.Command{Argv: []string{"systemctl", "start", s.Unit}},
			command.Command{Argv: []string{"systemctl", "stop", s.Unit}},
			command.Command{Argv: []string{"systemctl", "is-active", "--quiet", s.Unit}}
	}
	return command.Command{Argv: s.Start, Shell: s.Shell, Workload: true},
		command.Command{Argv: s.Stop, Shell: s.Shell},
		command.Command{Argv: s.Status, Shell: s.Shell}
}

// state is what the status command says of the service.
type state int

const (
	unknown state = iota // status could not run or did not finish
	stopped
	running
)

// readStatus runs the status command once. said is what it said, in
// words. Exit statuses 126 and 127 are a program that could not be run
// or found (through sh or env), not a stopped service: a fence must not
// be taken for verified by a status command that is broken.
func (sv *service) readStatus(ctx context.Context) (st state, said string) {
	c := sv.status
	c.Timeout = statusTimeout
	res, err := command.Run(ctx, c)
	switch {
	case err == nil:
		return running, "running"
	case res.ExitCode > 0 && res.ExitCode != 126 && res.ExitCode != 127:
		return stopped, "stopped"
	default:
		return unknown, "unknown (" + err.Error() + ")"
	}
}

// probe runs the health probe once; with none set it passes.
func (sv *service) probe(ctx context.Context) (seen string, err error) {
	h := sv.s.Health
	switch {
	case h == nil:
		return "no health probe: status says running", nil
	case h.HTTP != nil:
		return check.Probe(ctx, &check.Settings{Timeout: h.Timeout,
			HTTP: &check.HTTP{URL: h.HTTP.URL, Status: h.HTTP.Status, Body: h.HTTP.Body}})
	case h.TCP != nil:
		return check.Probe(ctx, &check.Settings{Timeout: h.Timeout, TCP: &check.TCP{Address: h.TCP.Address}})
	}
	c := command.Command{Argv: h.Command, Shell: sv.s.Shell, Timeout: h.Timeout.D()}
	res, err := command.Run(ctx, c)
	if err != nil {
		seen := err.Error()
		if res.ExitCode > 0 {
			seen = "exit status " + strconv.Itoa(res.ExitCode)
			if t := tail(res); t != "" {
				seen += ": " + t
			}
		}
		return seen, fmt.Errorf("expected %s to exit with status 0, seen %s", c.Name(), seen)
	}
	seen = c.Name() + " exited with status 0"
	if t := command.Tail(res.Stdout, 2); t != "" {
		seen += ": " + t
	}
	return seen, nil
}

// tail is the end of what a command wrote to stderr, or to stdout when
// stderr is empty.
func tail(res command.Result) string {
	if t := command.Tail(res.Stderr, 3); t != "" {
		return t
	}
	return command.Tail(res.Stdout, 3)
}

// keep adds the end of a command's outputs to a step's outputs.
func keep(out map[string]string, res command.Result) {
	if t := command.Tail(res.Stdout, 6); t != "" {
		out[resource.OutputStdout] = t
	}
	if t := command.Tail(res.Stderr, 6); t != "" {
		out[resource.OutputStderr] = t
	}
}

// until calls try at once and then again, firstPoll later and doubling
// up to pollInterval, until it is done or ctx ends. said is what try said
// last; a try cut short by the end of ctx says less than the one before
// it, and is not kept.
func until(ctx context.Context, try func(ctx context.Context) (done bool, said string)) (said string, ok bool) {
	wait := firstPoll
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		done, s := try(ctx)
		if done {
			return s, true
		}
		if ctx.Err() == nil || said == "" {
			said = s
		}
		select {
		case <-ctx.Done():
			return said, false
		case <-t.C:
		}
		wait = min(2*wait, pollInterval)
		t.Reset(wait)
	}
}

// gaveUp says why a wait bounded by timeout ended: the timeout, or
// parent's own end (wrapped, for errors.Is).
func gaveUp(parent context.Context, timeout time.Duration) error {
	if err := parent.Err(); err != nil {
		return fmt.Errorf("stopped waiting: %w", err)
	}
	return errors.New("gave up after " + timeout.String())
}

// Observer returns the observer of r of group g at site.
func (Type) Observer(g *config.Group, r *config.Resource, site string) (resource.Observer, error) {
	sv, err := newService(g, r, site)
	if err != nil {
		return nil, err
	}
	return observer{sv}, nil
}

type observer struct{ sv *service }

// Observe asks status and, when the service runs, the health probe. A
// stopped service is a standby that is ready: Streaming true.
func (o observer) Observe(ctx context.Context) status.ResourceView {
	v := status.ResourceView{Group: o.sv.group, Resource: o.sv.resource, Type: "service", ObservedAt: time.Now().UTC()}
	st, said := o.sv.readStatus(ctx)
	switch st {
	case unknown:
		v.Role, v.Error = status.RoleUnknown, "status "+said+": fix the status command"
	case stopped:
		v.Up, v.Role, v.Streaming = true, status.RoleStandby, true
	case running:
		v.Up, v.Role = true, status.RolePrimary
		if _, err := o.sv.probe(ctx); err != nil {
			v.Role, v.Error = status.RoleDown, "health: "+err.Error()
		}
	}
	return v
}

func (observer) Close() {}

// Actor returns the steps of r of group g at site.
func (Type) Actor(g *config.Group, r *config.Resource, site string) (resource.Actor, error) {
	return newService(g, r, site)
}

// Fence stops the service and waits until status says it stopped.
func (sv *service) Fence(ctx context.Context) (map[string]string, error) {
	return sv.stopVerified(ctx)
}

// CatchUp has nothing to do: a service holds no data.
func (sv *service) CatchUp(ctx context.Context, fenced map[string]string) error { return nil }

// Promote starts the service and waits until status says it runs and
// the health probe passes.
func (sv *service) Promote(ctx context.Context) (map[string]string, error) {
	return sv.startVerified(ctx)
}

// Rejoin keeps the service stopped: it runs at the active site only.
func (sv *service) Rejoin(ctx context.Context, primarySite string) (map[string]string, error) {
	return sv.stopVerified(ctx)
}

// Unfence starts the fenced service again, as Promote does.
func (sv *service) Unfence(ctx context.Context) error {
	_, err := sv.startVerified(ctx)
	return err
}

// runStop runs the stop command. A stop that fails on a service that
// stopped all the same (pkill finding nothing) has done its work.
func (sv *service) runStop(ctx context.Context, timeout time.Duration) (map[string]string, error) {
	out := map[string]string{}
	c := sv.stop
	c.Timeout = timeout
	res, err := command.Run(ctx, c)
	keep(out, res)
	if err != nil {
		if st, _ := sv.readStatus(ctx); st != stopped {
			return out, fmt.Errorf("%s: stop: %w; fix the stop command, or stop the service by hand", sv.where, err)
		}
	}
	return out, nil
}

func (sv *service) stopVerified(parent context.Context) (map[string]string, error) {
	timeout := sv.s.StopTimeout.D()
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	out := map[string]string{}
	if st, _ := sv.readStatus(ctx); st != stopped {
		var err error
		if out, err = sv.runStop(ctx, timeout); err != nil {
			return out, err
		}
	}
	said, ok := until(ctx, func(ctx context.Context) (bool, string) {
		st, said := sv.readStatus(ctx)
		return st == stopped, said
	})
	if !ok {
		return out, fmt.Errorf("%s: the service did not stop: %w; status said last: %s; fix the stop command, or stop the service by hand",
			sv.where, gaveUp(parent, timeout), said)
	}
	out[OutputStopped] = "true"
	return out, nil
}

func (sv *service) startVerified(parent context.Context) (map[string]string, error) {
	timeout := sv.s.StartTimeout.D()
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	out := map[string]string{}
	if st, _ := sv.readStatus(ctx); st != running {
		c := sv.start
		c.Timeout = timeout
		res, err := command.Run(ctx, c)
		keep(out, res)
		if err != nil {
			return out, fmt.Errorf("%s: start: %w; fix the start command, or what keeps the service from starting", sv.where, err)
		}
	}
	var seen string
	said, ok := until(ctx, func(ctx context.Context) (bool, string) {
		st, said := sv.readStatus(ctx)
		if st != running {
			return false, "status: " + said
		}
		s, err := sv.probe(ctx)
		if err != nil {
			return false, "health: " + err.Error()
		}
		seen = s
		return true, ""
	})
	if !ok {
		return out, fmt.Errorf("%s: the service did not run healthy: %w; last: %s; fix the service, or its start command or health probe",
			sv.where, gaveUp(parent, timeout), said)
	}
	out[OutputHealth] = seen
	return out, nil
}

// Yield returns how to stop the service at once when its site's serve
// lease runs out: the stop command, bounded by stop_timeout, nothing
// waited for; ok is false with stop_on_lease_loss: false.
func (Type) Yield(g *config.Group, r *config.Resource, site string) (stop func(ctx context.Context) error, ok bool) {
	sv, err := newService(g, r, site)
	if err != nil || sv.s.StopOnLeaseLoss == nil || !*sv.s.StopOnLeaseLoss {
		return nil, false
	}
	return func(ctx context.Context) error {
		timeout := sv.s.StopTimeout.D()
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := sv.runStop(ctx, timeout)
		return err
	}, true
}
