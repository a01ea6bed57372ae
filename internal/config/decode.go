package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Pos is a place in a configuration file.
type Pos struct {
	Line, Col int
}

// positions maps a field path ("sites[1].agent.address") to where its value
// stands in the file, so validation can point at the line a person must edit.
type positions map[string]Pos

// lookup returns the position of path, or of its nearest ancestor that is in
// the file (a missing field is reported where its parent block starts).
func (p positions) lookup(path string) Pos {
	for path != "" {
		if pos, ok := p[path]; ok {
			return pos
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return p[""]
}

// Limits on aliases. A few kilobytes of nested aliases ("billion laughs")
// stand for billions of nodes; the walk below and yaml's decoder follow
// aliases, so a document is measured before either touches it.
const (
	maxAliases      = 100
	maxExpandedSize = 10000 // nodes, with every alias expanded
)

// checkAliases measures the document: how many aliases it has, and how many
// nodes it would have with every alias expanded (memoised per anchor and
// capped, so nothing is ever expanded). It returns a problem at the first
// alias that breaks a limit or refers to a value containing itself, or nil.
// A document without aliases is never refused: its size is the file's.
func checkAliases(doc *yaml.Node) *Problem {
	m := aliasMeter{size: map[*yaml.Node]int{}, open: map[*yaml.Node]bool{}}
	m.visit(doc)
	return m.prob
}

type aliasMeter struct {
	aliases int
	total   int                // expanded size of what the visit has passed
	size    map[*yaml.Node]int // expanded size of an alias's target
	open    map[*yaml.Node]bool
	prob    *Problem
}

// visit walks the document in file order without following aliases.
func (m *aliasMeter) visit(n *yaml.Node) {
	if m.prob != nil || n == nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		m.aliases++
		if m.aliases > maxAliases {
			m.fail(n, "more than %d aliases in this document; write the values out instead", maxAliases)
			return
		}
		m.total = capped(m.total + m.expanded(n))
		if m.prob == nil && m.total > maxExpandedSize {
			m.fail(n, "aliases expand this document to more than %d nodes; write the values out instead", maxExpandedSize)
		}
		return
	}
	m.total = capped(m.total + 1)
	for _, c := range n.Content {
		m.visit(c)
	}
}

// expanded returns the size of n with every alias in it expanded, at most
// maxExpandedSize+1.
func (m *aliasMeter) expanded(n *yaml.Node) int {
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 1
		}
		if m.open[n.Alias] {
			m.fail(n, "alias *%s refers to a value that contains it", n.Value)
			return 1
		}
		n = n.Alias
	}
	if s, ok := m.size[n]; ok {
		return s
	}
	m.open[n] = true
	s := 1
	for _, c := range n.Content {
		if s = capped(s + m.expanded(c)); m.prob != nil || s > maxExpandedSize {
			break
		}
	}
	delete(m.open, n)
	m.size[n] = s
	return s
}

func (m *aliasMeter) fail(n *yaml.Node, format string, args ...any) {
	if m.prob == nil {
		m.prob = &Problem{Pos: Pos{n.Line, n.Column}, Msg: fmt.Sprintf(format, args...)}
	}
}

func capped(n int) int { return min(n, maxExpandedSize+1) }

var (
	nodeType        = reflect.TypeOf(yaml.Node{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// DecodeStrict decodes node into out (a pointer) and reports, with their
// positions, every key that out does not know and every scalar of the wrong
// kind. yaml's own KnownFields stops at the first problem and gives no column;
// a configuration check must list them all.
func DecodeStrict(node *yaml.Node, out any, path string) (map[string]Pos, []Problem) {
	pos := positions{}
	var probs []Problem
	walk(node, reflect.TypeOf(out).Elem(), path, pos, &probs)
	// Decode even after problems, so that validation can still report
	// everything else: yaml skips unknown keys and, on a value of the wrong
	// type, leaves the field alone and goes on. The walk above has already
	// reported both with their positions, so yaml's own TypeError adds
	// nothing; any other error is reported.
	var te *yaml.TypeError
	if err := node.Decode(out); err != nil && !errors.As(err, &te) {
		probs = append(probs, Problem{Pos: Pos{node.Line, node.Column}, Field: path, Msg: cleanYAMLError(err)})
	} else if te != nil && len(probs) == 0 {
		for _, msg := range te.Errors {
			probs = append(probs, Problem{Pos: Pos{node.Line, node.Column}, Field: path, Msg: cleanYAMLError(errors.New(msg))})
		}
	}
	return pos, probs
}

func walk(n *yaml.Node, t reflect.Type, path string, pos positions, probs *[]Problem) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	pos[path] = Pos{n.Line, n.Column}
	bad := func(format string, args ...any) {
		*probs = append(*probs, Problem{Pos: Pos{n.Line, n.Column}, Field: path, Msg: fmt.Sprintf(format, args...)})
	}
	if n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType {
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			bad("expected a single value, found %s", kindName(n))
			return
		}
		if v, ok := reflect.New(t).Interface().(interface{ check(string) error }); ok {
			if err := v.check(n.Value); err != nil {
				bad("%v", err)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad("expected a block of fields, found %s", kindName(n))
			return
		}
		fields := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			sub := join(path, k.Value)
			if !ok {
				*probs = append(*probs, Problem{Pos: Pos{k.Line, k.Column}, Field: sub,
					Msg: fmt.Sprintf("unknown field (known fields: %s)", knownList(fields))})
				continue
			}
			walk(v, f.Type, sub, pos, probs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad("expected a list, found %s", kindName(n))
			return
		}
		for i, e := range n.Content {
			walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), pos, probs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad("expected a block of fields, found %s", kindName(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			walk(v, t.Elem(), join(path, k.Value), pos, probs)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			bad("expected a string, found %s", kindName(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!bool") {
			bad("expected true or false, found %q", n.Value)
		}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseInt(n.Value, 0, 64); n.Kind != yaml.ScalarNode || err != nil {
			bad("expected a whole number, found %q", n.Value)
		}
	case reflect.Float64, reflect.Float32:
		if _, err := strconv.ParseFloat(n.Value, 64); n.Kind != yaml.ScalarNode || err != nil {
			bad("expected a number, found %q", n.Value)
		}
	}
}

func structFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for k, v := range structFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f
	}
	return fields
}

func knownList(fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a block of fields"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(path, key string) string {
	switch {
	case path == "":
		return key
	case key == "":
		return path
	}
	return path + "." + key
}

// cleanYAMLError drops yaml's "yaml: line N:" prefix; the caller prints the
// position in its own format.
func cleanYAMLError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if strings.HasPrefix(msg, "line ") {
		if _, rest, ok := strings.Cut(msg, ": "); ok {
			msg = rest
		}
	}
	return msg
}
