package check

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
)

// Type is the check resource type: class check.
type Type struct{}

var _ resource.Verifies = Type{}

func (Type) Name() string { return "check" }

// Config decodes and checks a site's settings.
func (Type) Config() config.ResourceType {
	return config.ResourceType{Class: config.ClassCheck, New: func() any { return &Settings{} }, Prepare: Prepare, Lint: Lint}
}

// The data types an sql check can ask, by the names of their rows in the
// table of types: the type decides the protocol.
const (
	typePostgres = "postgres"
	typeMariaDB  = "mariadb"
)

// Lint warns, when the topology is loaded, about the resources the
// settings name that the group does not hold or that cannot be asked
// this way: the check would fail every time it runs. It has
// config.ResourceType's Lint shape.
func Lint(g *config.Group, settings any) []config.FieldError {
	return crossCheck(g, settings.(*Settings))
}

// crossCheck returns what is wrong with the resources the settings name,
// in the light of their group.
func crossCheck(g *config.Group, s *Settings) []config.FieldError {
	var errs []config.FieldError
	find := func(name string) *config.Resource {
		for i := range g.Resources {
			if g.Resources[i].Name == name {
				return &g.Resources[i]
			}
		}
		return nil
	}
	if q := s.SQL; q != nil && q.Resource != "" {
		switch r := find(q.Resource); {
		case r == nil:
			errs = append(errs, config.FieldError{Field: "sql.resource",
				Msg: fmt.Sprintf("resource %q is not in group %s: name one of its postgres or mariadb resources", q.Resource, g.Name)})
		case r.Type != typePostgres && r.Type != typeMariaDB:
			errs = append(errs, config.FieldError{Field: "sql.resource",
				Msg: fmt.Sprintf("%s is a %s resource: an sql check asks the server of a postgres or mariadb resource", r.Name, r.Type)})
		}
	}
	for _, f := range s.addressFields() {
		ps, _ := parse(f.text)
		for _, p := range ps {
			switch r := find(p.resource); {
			case r == nil:
				errs = append(errs, config.FieldError{Field: f.field,
					Msg: fmt.Sprintf("placeholder %s: resource %q is not in group %s: name one of its resources", p, p.resource, g.Name)})
			case r.Class == config.ClassCheck || r.Type == "check":
				errs = append(errs, config.FieldError{Field: f.field,
					Msg: fmt.Sprintf("placeholder %s: %s is a check, which has no address: name a database or a dns resource", p, r.Name)})
			}
		}
	}
	return errs
}

// Verifier returns the check r of group g at site.
func (Type) Verifier(g *config.Group, r *config.Resource, site string) (resource.Verifier, error) {
	s, ok := r.Settings[site].(*Settings)
	if !ok {
		return nil, fmt.Errorf("group %s, check %s: no settings at site %s", g.Name, r.Name, site)
	}
	if probs := crossCheck(g, s); len(probs) > 0 {
		var errs []error
		for _, p := range probs {
			errs = append(errs, fmt.Errorf("%s: %s", p.Field, p.Msg))
		}
		return nil, fmt.Errorf("group %s, check %s at %s: %w", g.Name, r.Name, site, errors.Join(errs...))
	}
	v := &verifier{name: r.Name, s: s}
	if q := s.SQL; q != nil {
		for i := range g.Resources {
			if g.Resources[i].Name == q.Resource {
				v.sqlType = g.Resources[i].Type
			}
		}
	}
	if h := s.HTTP; h != nil && h.Body != "" {
		re, err := regexp.Compile(h.Body)
		if err != nil {
			return nil, fmt.Errorf("group %s, check %s at %s: http.body: %w", g.Name, r.Name, site, err)
		}
		v.body = re
	}
	return v, nil
}
