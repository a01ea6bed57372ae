package check

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// A placeholder in a check's url, address or server stands for the
// address of a resource of the group at the site: {R} for its host:port,
// {R.host} for its host, {R.port} for its port. The address is that of
// production's server after a real run, and of the drill's copy in a
// drill.
type placeholder struct {
	resource string
	part     string // "", "host" or "port"
}

func (p placeholder) String() string {
	if p.part == "" {
		return "{" + p.resource + "}"
	}
	return "{" + p.resource + "." + p.part + "}"
}

// placeholderRE is one placeholder's inside; resource names are those the
// topology allows.
var placeholderRE = regexp.MustCompile(`^([a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?)(?:\.(host|port))?$`)

const placeholderHelp = "write a placeholder as {db}, {db.host} or {db.port}, db a resource of the group"

// validName says whether name may name a resource.
func validName(name string) bool {
	m := placeholderRE.FindStringSubmatch(name)
	return m != nil && m[2] == ""
}

// segment is a piece of a text: literal, or a placeholder.
type segment struct {
	literal string
	p       *placeholder
}

// split cuts text into literals and placeholders, or says what is wrong.
func split(text string) ([]segment, error) {
	var out []segment
	for text != "" {
		open := strings.IndexAny(text, "{}")
		if open < 0 {
			out = append(out, segment{literal: text})
			break
		}
		if text[open] == '}' {
			return nil, fmt.Errorf("has a } without its {: %s (a literal brace is %%7D in a URL)", placeholderHelp)
		}
		if open > 0 {
			out = append(out, segment{literal: text[:open]})
		}
		end := strings.IndexAny(text[open+1:], "{}")
		if end < 0 || text[open+1+end] == '{' {
			return nil, fmt.Errorf("has a { without its }: %s (a literal brace is %%7B in a URL)", placeholderHelp)
		}
		inside := text[open+1 : open+1+end]
		m := placeholderRE.FindStringSubmatch(inside)
		if m == nil {
			return nil, fmt.Errorf("has placeholder {%s}: %s", inside, placeholderHelp)
		}
		out = append(out, segment{p: &placeholder{resource: m[1], part: m[2]}})
		text = text[open+1+end+1:]
	}
	return out, nil
}

// parse returns the placeholders of text, in order.
func parse(text string) ([]placeholder, error) {
	segs, err := split(text)
	var out []placeholder
	for _, s := range segs {
		if s.p != nil {
			out = append(out, *s.p)
		}
	}
	return out, err
}

// addressOf gives the host and port of a placeholder's resource; ok is
// false when the resource has no address here.
type addressOf func(placeholder) (host, port string, ok bool)

// fromTargets looks placeholders up in targets (resource → host:port).
func fromTargets(targets map[string]string) addressOf {
	return func(p placeholder) (string, string, bool) {
		addr, ok := targets[p.resource]
		if !ok {
			return "", "", false
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", "", false
		}
		return host, port, true
	}
}

// errNoAddress says that a resource named by a check has no address at
// the site the check runs at, and what to do.
type errNoAddress struct{ resource, hint string }

func (e errNoAddress) Error() string {
	return fmt.Sprintf("no address for resource %s here: %s", e.resource, e.hint)
}

// expand replaces every placeholder of text. With bracket, an IPv6 host
// of {R.host} is written in brackets, as a URL or host:port needs it.
func expand(text string, addr addressOf, bracket bool) (string, error) {
	segs, err := split(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, s := range segs {
		if s.p == nil {
			b.WriteString(s.literal)
			continue
		}
		host, port, ok := addr(*s.p)
		if !ok {
			return "", errNoAddress{s.p.resource, "it has none at this site; write the address in full instead of " + s.p.String()}
		}
		switch s.p.part {
		case "":
			b.WriteString(net.JoinHostPort(host, port))
		case "host":
			if bracket && strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
			b.WriteString(host)
		case "port":
			b.WriteString(port)
		}
	}
	return b.String(), nil
}
