// Package approval owns the approval resource (class gate): a step of a
// run that waits for a person — `siteflip approve RUN` lets the run go
// on, `siteflip reject RUN` stops it (docs/design/stacks.md). Without
// depends_on the run waits before anything is fenced; with depends_on it
// waits among the promotions, after what it depends on (the oVirt pattern:
// "press ENTER once the storage is read-write"). The controller waits;
// nothing runs at the site.
package approval

import (
	"fmt"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
)

// Type is the approval resource type.
type Type struct{}

func (Type) Name() string { return "approval" }

// Config decodes and checks a site's settings.
func (Type) Config() config.ResourceType {
	return config.ResourceType{Class: config.ClassGate, New: func() any { return &Settings{} }, Prepare: Prepare, Lint: Lint}
}

// Settings is what the person is asked when the group moves to the site,
// and how long the run waits.
type Settings struct {
	// Message is shown in status and the run while the run waits.
	Message string `yaml:"message"`
	// Timeout is how long the run waits (default 30m): before activation
	// it is then rolled back, after it the run fails.
	Timeout *config.Duration `yaml:"timeout"`
}

var _ plan.Gate = (*Settings)(nil)

// defaultTimeout is how long a run waits by default.
const defaultTimeout = 30 * time.Minute

// ApprovalTimeout implements plan.Gate.
func (s *Settings) ApprovalTimeout() time.Duration { return s.Timeout.D() }

// ApprovalMessage implements plan.Gate.
func (s *Settings) ApprovalMessage() string { return s.Message }

// Prepare sets the default timeout and checks the settings; it has
// config.ResourceType's Prepare shape.
func Prepare(settings any, _, _ string) []config.FieldError {
	s := settings.(*Settings)
	if s.Timeout == nil {
		d := config.Duration(defaultTimeout)
		s.Timeout = &d
	}
	if s.Timeout.D() <= 0 {
		return []config.FieldError{{Field: "timeout", Msg: "must be more than 0: it is how long a run waits for a person (e.g. 30m)"}}
	}
	return nil
}

// Lint warns about an approval in a group that fails over by itself: the
// automatic failover would wait for a person all the same.
func Lint(g *config.Group, settings any) []config.FieldError {
	if g.Policy != config.PolicyAutomatic {
		return nil
	}
	return []config.FieldError{{Field: "", Msg: fmt.Sprintf("group %s has policy: automatic, but an automatic failover waits at this approval until someone runs `siteflip approve` (or %s passes); "+
		"use policy: manual, or leave the approval out", g.Name, settings.(*Settings).Timeout.D())}}
}
