// Package whatif plays a disaster against the live state of an
// installation before it happens: the locations it destroys and the links
// it cuts, then what the safety core's own rules (status.Assemble,
// safety.Decide) do to every group and to the control plane
// (docs/design/risk.md, "What-if"). It is pure: no I/O, no clock; it
// changes nothing.
package whatif

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/geo"
)

// ErrNoEvent: the question names nothing to lose.
var ErrNoEvent = errors.New("name what to lose: --lose, --lose-links, --at with --radius, or --level")

// Event is a disaster: the locations it destroys and the links between
// locations it cuts, with what it came from.
type Event struct {
	// Destroyed are the locations destroyed, in the topology's order.
	Destroyed []string
	// Cut are the links cut, each pair in the order written, once.
	Cut [][2]string
	// Level and Description name the level the event came from, if any.
	Level, Description string
	// Area is the area destroyed, when one was given (--at, or the level's).
	Area *geo.Circle
}

// String says what the event is, in a few words.
func (e Event) String() string {
	var parts []string
	if e.Level != "" {
		l := "level " + e.Level
		if e.Description != "" {
			l += " (" + e.Description + ")"
		}
		parts = append(parts, l)
	}
	if e.Area != nil {
		parts = append(parts, fmt.Sprintf("everything within %s of %s", e.Area.Radius, e.Area.Center))
	}
	switch len(e.Destroyed) {
	case 0:
		if e.Area != nil || len(e.Cut) == 0 {
			parts = append(parts, "no location destroyed")
		}
	default:
		parts = append(parts, words(e.Destroyed)+" destroyed")
	}
	for _, l := range e.Cut {
		parts = append(parts, "link "+l[0]+"-"+l[1]+" cut")
	}
	return strings.Join(parts, "; ")
}

// EventOf makes the event that destroys the locations lose, cuts links,
// destroys every location in area (when not nil), and adds what the level
// named level does (when not ""): Level.Destroys and Level.Links. A name
// the topology does not know is an error that lists the known ones; so is
// an event that names nothing (ErrNoEvent).
func EventOf(t *config.Topology, lose []string, links [][2]string, area *geo.Circle, level string) (Event, error) {
	if len(lose) == 0 && len(links) == 0 && area == nil && level == "" {
		return Event{}, ErrNoEvent
	}
	names := t.SiteNames()
	gone := map[string]bool{}
	for _, l := range lose {
		if !slices.Contains(names, l) {
			return Event{}, fmt.Errorf("unknown location %q (locations: %s)", l, strings.Join(names, ", "))
		}
		gone[l] = true
	}
	ev := Event{Area: area}
	if level != "" {
		found, ok := t.Level(level)
		if !ok {
			return Event{}, unknownLevel(t, level)
		}
		lv := *found
		ev.Level, ev.Description = lv.Name, lv.Description
		for _, l := range lv.Destroys(t.Sites) {
			gone[l] = true
		}
		links = append(slices.Clone(links), lv.Links...)
		if ev.Area == nil {
			ev.Area = lv.Area
		}
	}
	if area != nil {
		for _, s := range t.Sites {
			if s.Location.Known() && area.Contains(s.Location.Point()) {
				gone[s.Name] = true
			}
		}
	}
	for _, n := range names {
		if gone[n] {
			ev.Destroyed = append(ev.Destroyed, n)
		}
	}
	for _, l := range links {
		for _, n := range l {
			if !slices.Contains(names, n) {
				return Event{}, fmt.Errorf("link %s-%s: unknown location %q (locations: %s)", l[0], l[1], n, strings.Join(names, ", "))
			}
		}
		if l[0] == l[1] {
			return Event{}, fmt.Errorf("link %s-%s: a link joins two different locations", l[0], l[1])
		}
		if !slices.ContainsFunc(ev.Cut, func(c [2]string) bool { return key(c) == key(l) }) {
			ev.Cut = append(ev.Cut, l)
		}
	}
	return ev, nil
}

func unknownLevel(t *config.Topology, name string) error {
	if len(t.Levels) == 0 {
		return fmt.Errorf("unknown level %q: %s defines no levels (add them under levels:, docs/whatif.md)", name, orTopology(t))
	}
	var names []string
	for _, l := range t.Levels {
		names = append(names, l.Name)
	}
	return fmt.Errorf("unknown level %q (levels: %s)", name, strings.Join(names, ", "))
}

func orTopology(t *config.Topology) string {
	if t.File != "" {
		return t.File
	}
	return "the topology"
}

// Question is an event as a person asks it: the flags of `siteflip
// whatif`, the query of GET /v1/whatif (lose=A,B&lose_links=A-B&
// at=LAT,LON&radius=60km&level=NAME).
type Question struct {
	Lose      []string
	LoseLinks []string
	At        string
	Radius    string
	Level     string
}

// QuestionOf reads a question from a query; lists are comma-separated.
func QuestionOf(v url.Values) Question {
	return Question{Lose: list(v["lose"]), LoseLinks: list(v["lose_links"]), At: v.Get("at"), Radius: v.Get("radius"), Level: v.Get("level")}
}

// Query is q as the query of GET /v1/whatif.
func (q Question) Query() url.Values {
	v := url.Values{}
	if len(q.Lose) > 0 {
		v.Set("lose", strings.Join(q.Lose, ","))
	}
	if len(q.LoseLinks) > 0 {
		v.Set("lose_links", strings.Join(q.LoseLinks, ","))
	}
	for k, s := range map[string]string{"at": q.At, "radius": q.Radius, "level": q.Level} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// Event reads q against topology t (EventOf); errors say what is wrong
// and how to write it.
func (q Question) Event(t *config.Topology) (Event, error) {
	var links [][2]string
	for _, s := range list(q.LoseLinks) {
		l, err := t.ParseLink(s)
		if err != nil {
			return Event{}, fmt.Errorf("--lose-links: %w", err)
		}
		links = append(links, l)
	}
	var area *geo.Circle
	switch {
	case q.At != "" && q.Radius == "":
		return Event{}, errors.New("--at needs --radius: how far around it everything is destroyed, like 60km")
	case q.At == "" && q.Radius != "":
		return Event{}, errors.New("--radius needs --at: the centre of the area, as LAT,LON")
	case q.At != "":
		p, err := geo.ParsePoint(q.At)
		if err != nil {
			return Event{}, fmt.Errorf("--at: %w", err)
		}
		r, err := geo.ParseDistance(q.Radius)
		if err != nil {
			return Event{}, fmt.Errorf("--radius: %w", err)
		}
		area = &geo.Circle{Center: p, Radius: r}
	}
	return EventOf(t, list(q.Lose), links, area, strings.TrimSpace(q.Level))
}

// list splits comma-separated values, dropping empty ones.
func list(vs []string) []string {
	var out []string
	for _, v := range vs {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// key is a link whichever way it is written.
func key(l [2]string) [2]string {
	if l[1] < l[0] {
		return [2]string{l[1], l[0]}
	}
	return l
}

// words joins names as a person writes them: "a", "a and b", "a, b and c".
func words(names []string) string {
	switch len(names) {
	case 0:
		return "none"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
