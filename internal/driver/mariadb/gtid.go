package mariadb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// gtid is one GTID, domain-server-sequence.
type gtid struct {
	Domain, Server uint32
	Seq            uint64
}

func (g gtid) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// parseGTIDs reads a GTID list ("0-1-12,1-2-5", as @@gtid_binlog_pos or
// @@gtid_slave_pos show it) as the last GTID of each domain: of two in
// one domain the higher sequence number.
func parseGTIDs(v string) (map[uint32]gtid, error) {
	out := map[uint32]gtid{}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		g, err := parseGTID(f)
		if err != nil {
			return nil, err
		}
		if old, ok := out[g.Domain]; !ok || g.Seq > old.Seq {
			out[g.Domain] = g
		}
	}
	return out, nil
}

func parseGTID(f string) (gtid, error) {
	parts := strings.Split(f, "-")
	if len(parts) != 3 {
		return gtid{}, fmt.Errorf("GTID %q: want domain-server-sequence", f)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	s, err2 := strconv.ParseUint(parts[1], 10, 32)
	n, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return gtid{}, fmt.Errorf("GTID %q: %w", f, err)
	}
	return gtid{Domain: uint32(d), Server: uint32(s), Seq: n}, nil
}

// parseGTIDList reads a GTID list as the highest sequence number in each
// domain.
func parseGTIDList(v string) (map[uint32]uint64, error) {
	gs, err := parseGTIDs(v)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]uint64, len(gs))
	for d, g := range gs {
		out[d] = g.Seq
	}
	return out, nil
}

// comparePositions compares two GTID positions (gtid_current_pos) domain
// by domain, a domain missing from one counting as nothing applied there:
// one is ahead when it is at least as far in every domain. Two that are
// each ahead in a different domain cannot be compared.
func comparePositions(a, b string) (int, bool) {
	x, errA := parseGTIDList(a)
	y, errB := parseGTIDList(b)
	if errA != nil || errB != nil {
		return 0, false
	}
	ahead, behind := false, false
	for d, n := range x {
		ahead = ahead || n > y[d]
		behind = behind || n < y[d]
	}
	for d, n := range y {
		behind = behind || n > x[d]
	}
	switch {
	case ahead && behind:
		return 0, false
	case ahead:
		return 1, true
	case behind:
		return -1, true
	}
	return 0, true
}
