package bgp

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/siteflip/siteflip/internal/config"
)

func decode(t *testing.T, text string) *Settings {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	dec.KnownFields(true)
	var s Settings
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &s
}

func TestSettingsDecodeAndDefaults(t *testing.T) {
	s := decode(t, `
asn: 65001
neighbors: [{address: 10.1.0.1, asn: 65000}]
prefixes: [10.77.0.10/32]
next_hop: 10.1.0.10
bfd: true
rd: "65001:10"
production_rt: "65000:100"
standby_rt: "65000:200"
bubble_rt: "65000:999"
`)
	s.SetDefaults()
	want := &Settings{
		ASN:          65001,
		RouterID:     "10.1.0.10",
		ListenPort:   -1,
		Neighbors:    []Neighbor{{Address: "10.1.0.1", ASN: 65000, Port: 179}},
		Prefixes:     []string{"10.77.0.10/32"},
		NextHop:      "10.1.0.10",
		BFD:          true,
		HoldTime:     config.Duration(9 * time.Second),
		RD:           "65001:10",
		ProductionRT: "65000:100",
		StandbyRT:    "65000:200",
		BubbleRT:     "65000:999",
		Label:        3,
	}
	if d := cmp.Diff(want, s); d != "" {
		t.Errorf("settings (-want +got):\n%s", d)
	}
	if errs := s.CheckVRF(); errs != nil {
		t.Errorf("CheckVRF: %v", errs)
	}
	if !s.VRF() {
		t.Error("VRF() false with rd set")
	}

	s = decode(t, "asn: 65001\nrouter_id: 10.1.0.10\nlisten_port: 1179\nhold_time: 30s\nneighbors: [{address: 10.1.0.1, asn: 65000, port: 1790}]\nprefixes: [10.77.0.0/24]\n")
	s.SetDefaults()
	if errs := s.Check(); errs != nil {
		t.Errorf("Check: %v", errs)
	}
	if s.ListenPort != 1179 || s.HoldTime.D() != 30*time.Second || s.Neighbors[0].Port != 1790 || s.Label != 0 || s.VRF() {
		t.Errorf("explicit values changed: %+v", s)
	}

	dec := yaml.NewDecoder(strings.NewReader("asn: 65001\nholdtime: 9s\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&Settings{}); err == nil {
		t.Error("unknown key holdtime decoded without error")
	}
}

func TestSettingsCheck(t *testing.T) {
	base := func() Settings {
		return Settings{
			ASN:       65001,
			RouterID:  "10.1.0.10",
			Neighbors: []Neighbor{{Address: "10.1.0.1", ASN: 65000}},
			Prefixes:  []string{"10.77.0.10/32"},
		}
	}
	vrf := func() Settings {
		s := base()
		s.RD, s.ProductionRT, s.StandbyRT, s.BubbleRT = "65001:10", "65000:100", "65000:200", "65000:999"
		return s
	}
	tests := []struct {
		name  string
		s     Settings
		vrf   bool   // CheckVRF instead of Check
		field string // "" for no error
		msg   string // part of the message
	}{
		{"good", base(), false, "", ""},
		{"good vrf", vrf(), true, "", ""},
		{"asn 0", func() Settings { s := base(); s.ASN = 0; return s }(), false, "asn", "is required"},
		{"as_trans", func() Settings { s := base(); s.ASN = 23456; return s }(), false, "asn", "AS_TRANS"},
		{"no router id", func() Settings { s := base(); s.RouterID = ""; return s }(), false, "router_id", "is required"},
		{"ipv6 router id", func() Settings { s := base(); s.RouterID = "2001:db8::1"; return s }(), false, "router_id", "not an IPv4 address"},
		{"listen port", func() Settings { s := base(); s.ListenPort = 70000; return s }(), false, "listen_port", "out of range"},
		{"no neighbors", func() Settings { s := base(); s.Neighbors = nil; return s }(), false, "neighbors", "is required"},
		{"bad neighbor", func() Settings { s := base(); s.Neighbors[0].Address = "router1"; return s }(), false, "neighbors[0].address", "not an IP address"},
		{"neighbor asn", func() Settings { s := base(); s.Neighbors[0].ASN = 0; return s }(), false, "neighbors[0].asn", "is required"},
		{"duplicate neighbor", func() Settings {
			s := base()
			s.Neighbors = append(s.Neighbors, Neighbor{Address: "10.1.0.1", ASN: 65002})
			return s
		}(), false, "neighbors[1].address", "also neighbors[0]"},
		{"no prefixes", func() Settings { s := base(); s.Prefixes = nil; return s }(), false, "prefixes", "is required"},
		{"address not prefix", func() Settings { s := base(); s.Prefixes = []string{"10.77.0.10"}; return s }(), false, "prefixes[0]", "write it as 10.77.0.10/32"},
		{"bad prefix", func() Settings { s := base(); s.Prefixes = []string{"10.77.0.300/32"}; return s }(), false, "prefixes[0]", "not a prefix"},
		{"host bits", func() Settings { s := base(); s.Prefixes = []string{"10.77.0.10/24"}; return s }(), false, "prefixes[0]", "write 10.77.0.0/24"},
		{"ipv6 prefix", func() Settings { s := base(); s.Prefixes = []string{"2001:db8::/64"}; return s }(), false, "prefixes[0]", "only IPv4"},
		{"duplicate prefix", func() Settings { s := base(); s.Prefixes = []string{"10.77.0.10/32", "10.77.0.10/32"}; return s }(), false, "prefixes[1]", "also prefixes[0]"},
		{"next hop", func() Settings { s := base(); s.NextHop = "gateway"; return s }(), false, "next_hop", "not an IPv4 address"},
		{"loopback next hop", func() Settings { s := base(); s.NextHop = "127.0.0.1"; return s }(), false, "next_hop", "cannot be a next hop"},
		{"hold time short", func() Settings { s := base(); s.HoldTime = config.Duration(2 * time.Second); return s }(), false, "hold_time", "3 s or more"},
		{"hold time fraction", func() Settings { s := base(); s.HoldTime = config.Duration(4500 * time.Millisecond); return s }(), false, "hold_time", "whole seconds"},
		{"hold time long", func() Settings { s := base(); s.HoldTime = config.Duration(20 * time.Hour); return s }(), false, "hold_time", "at most 65535 s"},
		{"vrf needs rd", func() Settings { s := vrf(); s.RD = ""; return s }(), true, "rd", "is required"},
		{"vrf needs production", func() Settings { s := vrf(); s.ProductionRT = ""; return s }(), true, "production_rt", "is required"},
		{"vrf needs standby", func() Settings { s := vrf(); s.StandbyRT = ""; return s }(), true, "standby_rt", "is required"},
		{"bubble optional", func() Settings { s := vrf(); s.BubbleRT = ""; return s }(), true, "", ""},
		{"partial vrf in bgp", func() Settings { s := vrf(); s.RD = ""; return s }(), false, "rd", "is required"},
		{"label without rd", func() Settings { s := base(); s.Label = 16; return s }(), false, "label", "without rd"},
		{"label range", func() Settings { s := vrf(); s.Label = 1 << 20; return s }(), true, "label", "out of range"},
		{"standby equals production", func() Settings { s := vrf(); s.StandbyRT = "65000:100"; return s }(), true, "standby_rt", "also production_rt"},
		{"bubble equals production", func() Settings { s := vrf(); s.BubbleRT = "65000:0100"; return s }(), true, "bubble_rt", "production would import a drill's routes"},
		{"bubble equals standby", func() Settings { s := vrf(); s.BubbleRT = "65000:200"; return s }(), true, "bubble_rt", "parked standby routes"},
		{"rt without colon", func() Settings { s := vrf(); s.ProductionRT = "65000"; return s }(), true, "production_rt", "not ADMIN:NUMBER"},
		{"rt bad admin", func() Settings { s := vrf(); s.ProductionRT = "core:100"; return s }(), true, "production_rt", "not an AS number"},
		{"rt asn 0", func() Settings { s := vrf(); s.StandbyRT = "0:100"; return s }(), true, "standby_rt", "reserved"},
		{"rt number too big", func() Settings { s := vrf(); s.StandbyRT = "65000:4294967296"; return s }(), true, "standby_rt", "not a number"},
		{"rt 4-octet number", func() Settings { s := vrf(); s.StandbyRT = "4200000000:70000"; return s }(), true, "standby_rt", "up to 65535"},
		{"rt address number", func() Settings { s := vrf(); s.BubbleRT = "10.0.0.1:70000"; return s }(), true, "bubble_rt", "up to 65535"},
		{"rd ipv6", func() Settings { s := vrf(); s.RD = "2001:db8::1:100"; return s }(), true, "rd", "IPv4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.SetDefaults()
			errs := s.Check()
			if tc.vrf {
				errs = s.CheckVRF()
			}
			if tc.field == "" {
				if errs != nil {
					t.Fatalf("errors %v, want none", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("errors %v, want one for %s", errs, tc.field)
			}
			if errs[0].Field != tc.field || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Errorf("error %s: %s, want %s: …%s…", errs[0].Field, errs[0].Msg, tc.field, tc.msg)
			}
		})
	}
}

func TestParseRDRT(t *testing.T) {
	for in, want := range map[string]string{
		"65000:100":        "65000:100",
		"65000:0100":       "65000:100",
		"65000:4294967295": "65000:4294967295",
		"4200000000:100":   "4200000000:100",
		"64086.59904:100":  "4200000000:100",
		"10.0.0.1:7":       "10.0.0.1:7",
	} {
		v, err := parseRDRT(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if v.String() != want {
			t.Errorf("%s reads as %s, want %s", in, v, want)
		}
		// What goes on the wire reads back the same.
		if got := formatRD(v.distinguisher()); got != want {
			t.Errorf("%s as rd reads back as %s", in, got)
		}
		if got, ok := formatTarget(v.target()); !ok || got != want {
			t.Errorf("%s as rt reads back as %s", in, got)
		}
	}
}

func TestAcross(t *testing.T) {
	site := func(rd, prod string, prefixes ...string) *Settings {
		s := &Settings{
			ASN: 65001, RouterID: "10.1.0.10",
			Neighbors: []Neighbor{{Address: "10.1.0.1", ASN: 65000}},
			Prefixes:  prefixes,
			RD:        rd, ProductionRT: prod, StandbyRT: "65000:200",
		}
		s.SetDefaults()
		return s
	}
	tests := []struct {
		name   string
		bySite map[string]any
		want   map[string][]string // site → fields
	}{
		{"same", map[string]any{
			"antwerp":  site("", "", "10.77.0.10/32", "10.77.1.0/24"),
			"brussels": site("", "", "10.77.1.0/24", "10.77.0.10/32"),
		}, map[string][]string{}},
		{"prefixes differ", map[string]any{
			"antwerp":  site("", "", "10.77.0.10/32"),
			"brussels": site("", "", "10.77.0.11/32"),
		}, map[string][]string{"brussels": {"prefixes"}}},
		{"vrf good", map[string]any{
			"antwerp":  site("65001:1", "65000:100", "10.77.0.10/32"),
			"brussels": site("65001:2", "65000:0100", "10.77.0.10/32"),
		}, map[string][]string{}},
		{"vrf same rd, other target", map[string]any{
			"antwerp":  site("65001:1", "65000:100", "10.77.0.10/32"),
			"brussels": site("65001:1", "65000:101", "10.77.0.10/32"),
		}, map[string][]string{"brussels": {"production_rt", "rd"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string][]string{}
			for site, errs := range Across(tc.bySite) {
				for _, e := range errs {
					got[site] = append(got[site], e.Field)
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func TestResourceTypes(t *testing.T) {
	s := Type{}.Config().New().(*Settings)
	*s = Settings{ASN: 65001, NextHop: "10.1.0.10", Neighbors: []Neighbor{{Address: "10.1.0.1", ASN: 65000}}, Prefixes: []string{"10.77.0.10/32"}}
	if errs := (Type{}).Config().Prepare(s, "brussels", "/etc"); errs != nil {
		t.Errorf("bgp Prepare: %v", errs)
	}
	if errs := (Type{VRF: true}).Config().Prepare(s, "brussels", "/etc"); len(errs) != 3 {
		t.Errorf("vrf Prepare without rd and targets: %v, want rd, production_rt and standby_rt", errs)
	}
}
