package bgp

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// rdrt is a route distinguisher or route target value, both written
// ADMIN:NUMBER: a 2-octet AS number with a 32-bit number, an IPv4 address
// with a 16-bit number, or a 4-octet AS number (plain or dotted, e.g.
// 4200000000 or 64086.59904) with a 16-bit number. GoBGP's own parser
// silently truncates out-of-range numbers, so this one is strict.
type rdrt struct {
	addr netip.Addr // the IPv4 form when valid
	asn  uint32
	num  uint32
}

func parseRDRT(s string) (rdrt, error) {
	admin, number, ok := cutLast(s, ":")
	if !ok || admin == "" || number == "" {
		return rdrt{}, fmt.Errorf("%q is not ADMIN:NUMBER: write it like 65000:100, 4200000000:100 or 10.0.0.1:100", s)
	}
	num, err := strconv.ParseUint(number, 10, 32)
	if err != nil {
		return rdrt{}, fmt.Errorf("%q: %q is not a number from 0 to %d", s, number, uint32(math.MaxUint32))
	}
	if a, err := netip.ParseAddr(admin); err == nil {
		if !a.Is4() {
			return rdrt{}, fmt.Errorf("%q: only an IPv4 address can be the administrator", s)
		}
		if num > math.MaxUint16 {
			return rdrt{}, fmt.Errorf("%q: with an address before the colon the number goes up to 65535", s)
		}
		return rdrt{addr: a, num: uint32(num)}, nil
	}
	asn, err := parseASN(admin)
	if err != nil {
		return rdrt{}, fmt.Errorf("%q: %v", s, err)
	}
	if asn > math.MaxUint16 && num > math.MaxUint16 {
		return rdrt{}, fmt.Errorf("%q: with a 4-octet AS number the number goes up to 65535", s)
	}
	return rdrt{asn: asn, num: uint32(num)}, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// parseASN reads an AS number written plain (4200000000) or dotted
// (64086.59904); 0 is reserved.
func parseASN(s string) (uint32, error) {
	var asn uint64
	if hi, lo, dotted := strings.Cut(s, "."); dotted {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("%q is not an AS number", s)
		}
		asn = h<<16 | l
	} else {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not an AS number or IPv4 address", s)
		}
		asn = n
	}
	if asn == 0 {
		return 0, fmt.Errorf("AS number 0 is reserved")
	}
	return uint32(asn), nil
}

// String writes the value as FRR does, AS numbers plain.
func (v rdrt) String() string {
	if v.addr.IsValid() {
		return v.addr.String() + ":" + strconv.FormatUint(uint64(v.num), 10)
	}
	return strconv.FormatUint(uint64(v.asn), 10) + ":" + strconv.FormatUint(uint64(v.num), 10)
}

// distinguisher returns the value as a route distinguisher.
func (v rdrt) distinguisher() gobgp.RouteDistinguisherInterface {
	switch {
	case v.addr.IsValid():
		rd, _ := gobgp.NewRouteDistinguisherIPAddressAS(v.addr, uint16(v.num))
		return rd
	case v.asn > math.MaxUint16:
		return gobgp.NewRouteDistinguisherFourOctetAS(v.asn, uint16(v.num))
	default:
		return gobgp.NewRouteDistinguisherTwoOctetAS(uint16(v.asn), v.num)
	}
}

// target returns the value as a route-target extended community.
func (v rdrt) target() gobgp.ExtendedCommunityInterface {
	switch {
	case v.addr.IsValid():
		rt, _ := gobgp.NewIPv4AddressSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_TARGET, v.addr, uint16(v.num), true)
		return rt
	case v.asn > math.MaxUint16:
		return gobgp.NewFourOctetAsSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_TARGET, v.asn, uint16(v.num), true)
	default:
		return gobgp.NewTwoOctetAsSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_TARGET, uint16(v.asn), v.num, true)
	}
}

// formatRD writes a route distinguisher received from GoBGP like String.
func formatRD(rd gobgp.RouteDistinguisherInterface) string {
	switch rd := rd.(type) {
	case *gobgp.RouteDistinguisherTwoOctetAS:
		return rdrt{asn: uint32(rd.Admin), num: rd.Assigned}.String()
	case *gobgp.RouteDistinguisherFourOctetAS:
		return rdrt{asn: rd.Admin, num: uint32(rd.Assigned)}.String()
	case *gobgp.RouteDistinguisherIPAddressAS:
		return rdrt{addr: rd.Admin, num: uint32(rd.Assigned)}.String()
	case nil:
		return ""
	default:
		return rd.String()
	}
}

// formatTarget writes a route-target community like String, and reports
// false for other extended communities.
func formatTarget(c gobgp.ExtendedCommunityInterface) (string, bool) {
	if _, sub := c.GetTypes(); sub != gobgp.EC_SUBTYPE_ROUTE_TARGET {
		return "", false
	}
	switch c := c.(type) {
	case *gobgp.TwoOctetAsSpecificExtended:
		return rdrt{asn: uint32(c.AS), num: c.LocalAdmin}.String(), true
	case *gobgp.FourOctetAsSpecificExtended:
		return rdrt{asn: c.AS, num: uint32(c.LocalAdmin)}.String(), true
	case *gobgp.IPv4AddressSpecificExtended:
		return rdrt{addr: c.IPv4, num: uint32(c.LocalAdmin)}.String(), true
	default:
		return c.String(), true
	}
}
