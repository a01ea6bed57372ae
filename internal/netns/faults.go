package netns

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"
)

// pair is a link between two endpoints (location names or Host), a < b.
type pair struct{ a, b string }

func makePair(a, b string) pair {
	if b < a {
		a, b = b, a
	}
	return pair{a, b}
}

func (p pair) other(e string) string {
	if p.a == e {
		return p.b
	}
	return p.a
}

// Cut drops every packet between a and b, both ways, as a dead link would.
// Either may be Host.
func (n *Net) Cut(a, b string) error {
	return n.setFault(a, b, 100)
}

// Loss drops percent of the packets between a and b at random, each way
// on its own: a round trip then fails more often than percent. 100 is the
// same as Cut. Either may be Host.
func (n *Net) Loss(a, b string, percent int) error {
	if percent < 1 || percent > 100 {
		return fmt.Errorf("netns: loss %s–%s: %d %%: want 1 to 100", a, b, percent)
	}
	return n.setFault(a, b, percent)
}

// Isolate cuts name off from every other location and from the root
// namespace, except those listed; Host in except keeps the root namespace
// (the tests, a client running there) in reach. Links to the excepted keep
// whatever fault they had, so a client link can stay lossy. Heal or HealAll
// undo it.
func (n *Net) Isolate(name string, except ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkLocked(name); err != nil {
		return err
	}
	for _, e := range except {
		if err := n.checkLocked(e); err != nil {
			return err
		}
	}
	order := []string{name}
	for _, other := range n.endpoints() {
		if other == name {
			continue
		}
		order = append(order, other)
		if !slices.Contains(except, other) {
			n.faults[makePair(name, other)] = 100
		}
	}
	// The isolated location's own table first: it drops everything from
	// the others in one transaction, so the cut takes effect at once, not
	// link by link as the other namespaces follow.
	return n.applyLocked(context.Background(), order...)
}

// Heal removes the fault between a and b, if any.
func (n *Net) Heal(a, b string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkPairLocked(a, b); err != nil {
		return err
	}
	delete(n.faults, makePair(a, b))
	return n.applyLocked(context.Background(), a, b)
}

// HealAll removes every fault.
func (n *Net) HealAll() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	clear(n.faults)
	return n.applyLocked(context.Background(), n.endpoints()...)
}

func (n *Net) setFault(a, b string, percent int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkPairLocked(a, b); err != nil {
		return err
	}
	n.faults[makePair(a, b)] = percent
	return n.applyLocked(context.Background(), a, b)
}

func (n *Net) checkLocked(name string) error {
	if n.closed {
		return ErrClosed
	}
	if name != Host && n.locs[name] == nil {
		return fmt.Errorf("netns: unknown location %q", name)
	}
	return nil
}

func (n *Net) checkPairLocked(a, b string) error {
	if err := n.checkLocked(a); err != nil {
		return err
	}
	if err := n.checkLocked(b); err != nil {
		return err
	}
	if a == b {
		return fmt.Errorf("netns: %q to itself: want two different endpoints", a)
	}
	return nil
}

// endpoints returns every location and Host.
func (n *Net) endpoints() []string {
	return append(slices.Clone(n.names), Host)
}

// applyLocked replaces the nftables table of each endpoint with one that
// holds its current faults, in one transaction per namespace, and removes
// the table where no fault is left.
func (n *Net) applyLocked(ctx context.Context, endpoints ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, e := range endpoints {
		drops := make(map[string]int) // source address → percent
		for p, percent := range n.faults {
			if p.a == e || p.b == e {
				drops[n.Addr(p.other(e)).String()] = percent
			}
		}
		if len(drops) == 0 && !n.tables[e] {
			continue
		}
		var ns, iif string
		if e == Host {
			iif = n.prefix + "br"
		} else {
			ns = n.locs[e].ns
		}
		if err := runNft(ctx, ns, render(n.prefix, iif, drops)); err != nil {
			return err
		}
		n.tables[e] = len(drops) > 0
	}
	return nil
}

// render writes the nft script that replaces table inet <prefix> with an
// input chain dropping packets from the sources in drops (address →
// percent). Packets are dropped where they arrive, so the sender gets no
// error, as on a dead line. A non-empty iif restricts the rules to packets
// arriving on that device, for the root namespace's table. With no drops the
// script only removes the table.
func render(prefix, iif string, drops map[string]int) []byte {
	b := bytes.NewBuffer(dropTable(prefix))
	if len(drops) == 0 {
		return b.Bytes()
	}
	fmt.Fprintf(b, "table inet %s {\n", prefix)
	fmt.Fprintf(b, "\tcomment \"siteflip netns %s: faults between locations\"\n", prefix)
	fmt.Fprintf(b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	match := ""
	if iif != "" {
		match = fmt.Sprintf("iifname %q ", iif)
	}
	addrs := make([]string, 0, len(drops))
	for a := range drops {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		if percent := drops[a]; percent >= 100 {
			fmt.Fprintf(b, "\t\t%sip saddr %s drop\n", match, a)
		} else {
			fmt.Fprintf(b, "\t\t%sip saddr %s numgen random mod 100 < %d drop\n", match, a, percent)
		}
	}
	b.WriteString("\t}\n}\n")
	return b.Bytes()
}

// dropTable is an nft script that removes table inet <prefix> whether it
// exists or not: declaring a table creates it when missing.
func dropTable(prefix string) []byte {
	return fmt.Appendf(nil, "table inet %s\ndelete table inet %s\n", prefix, prefix)
}
