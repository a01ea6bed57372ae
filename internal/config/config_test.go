package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/driver/postgres"
)

func TestLoadGood(t *testing.T) {
	topo, err := config.Load("testdata/good.yaml", driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := topo.SiteNames(), []string{"brussels", "antwerp", "frankfurt"}; !cmp.Equal(got, want) {
		t.Errorf("sites: %s", cmp.Diff(want, got))
	}
	s, _ := topo.Site("brussels")
	if s.Role != config.RoleSite {
		t.Errorf("role defaults to site, got %q", s.Role)
	}
	if got := topo.Coordination.ElectionTimeout.D(); got != time.Second {
		t.Errorf("election timeout default: got %s", got)
	}
	g, ok := topo.Group("webshop")
	if !ok {
		t.Fatal("group webshop missing")
	}
	if want := []string{"brussels", "antwerp"}; !cmp.Equal(g.Sites, want) {
		t.Errorf("group sites default to the role-site locations: %s", cmp.Diff(want, g.Sites))
	}
	if g.MaxDataLoss.D() != 2*time.Second || g.RTOTarget.D() != 30*time.Second || g.Policy != config.PolicyManual {
		t.Errorf("group fields: max_data_loss %s rto_target %s policy %s", g.MaxDataLoss.D(), g.RTOTarget.D(), g.Policy)
	}
	ps, ok := g.Resources[0].Settings["antwerp"].(*postgres.Settings)
	if !ok {
		t.Fatalf("settings of db at antwerp: %T", g.Resources[0].Settings["antwerp"])
	}
	if ps.Port != 5432 || ps.Host != "10.2.0.20" || ps.ApplicationName != "antwerp" {
		t.Errorf("postgres settings at antwerp: %+v", ps)
	}
}

// TestBadConfigs lists, for each broken file in testdata, every error it
// must produce (as FILE:LINE:COL: field: message prefixes) and nothing else.
func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"unknown-keys.bad.yaml", []string{
			"2:1: colour: unknown field (known fields: coordination, groups, name, operator, sites, tls)",
			"7:5: sites[0].rack: unknown field",
			"22:58: groups[0].resources[0].sites.brussels.pasword: unknown field (known fields: application_name,",
		}},
		{"quorum.bad.yaml", []string{
			"3:3: sites: no witness",
			"3:3: sites: 2 location(s): at least three voting locations",
		}},
		{"duplicates.bad.yaml", []string{
			`5:11: sites[1].name: site "brussels" is defined twice (first at sites[0])`,
			"6:22: sites[1].agent.address: address 10.1.0.10:7400 is already used by sites[0].agent.address",
			"11:59: sites[2].etcd.client_url: address 10.1.0.10:2379 is already used by sites[0].etcd.client_url",
		}},
		{"resources.bad.yaml", []string{
			`14:21: groups[0].preferred_site: site "paris" does not exist (sites: brussels, antwerp, frankfurt)`,
			`15:13: groups[0].policy: "sometimes" is not a policy`,
			`19:22: groups[0].resources[0].depends_on[0]: unknown resource "ldap" in group "webshop"`,
			`21:11: groups[0].resources[0].sites: resource "db" is missing at site "antwerp"`,
			`22:22: groups[0].resources[0].sites.frankfurt: "frankfurt" is not a site of group "webshop"`,
			`24:15: groups[0].resources[1].type: unknown resource type "service-mesh" (known: bgp, dns, haproxy, postgres, vrf)`,
			"25:21: groups[0].resources[1].depends_on: dependency cycle: app → cache → app",
			`26:16: groups[0].resources[1].sites: resource "app" is missing at site "brussels"`,
			`26:16: groups[0].resources[1].sites: resource "app" is missing at site "antwerp"`,
			"31:45: groups[0].resources[2].sites.brussels.port: 70000 is out of range",
			`31:62: groups[0].resources[2].sites.brussels.data_dir: "srv/cache" must be an absolute path`,
			`34:21: groups[1].preferred_site: "frankfurt" is a witness`,
			`35:16: groups[1].resources: group "crm" has no resources`,
			`42:78: groups[2].resources[0].sites.brussels.application_name: "shop" is also the application_name at antwerp`,
		}},
		{"values.bad.yaml", []string{
			`2:21: coordination.election_timeout: "soon" is not a duration`,
			"3:16: coordination.serve_lease: 100ms is too short",
			"4:17: coordination.fence_margin: 10ms is too short",
			`6:11: sites[0].name: site name "Brussels" must be lowercase`,
			"7:26: sites[0].location.latitude: 200 is outside -90..90",
			`7:42: sites[0].location.longitude: expected a number, found "east"`,
			`8:22: sites[0].agent.address: "10.1.0.10" is not host:port`,
			`9:22: sites[0].etcd.peer_url: "10.1.0.10:2380" is not a URL`,
			`11:11: sites[1].role: "primary" is not a role: use site or witness`,
			"18:9: groups: expected a list, found a block of fields",
		}},
		{"syntax.bad.yaml", []string{
			"2:1: did not find expected ',' or '}'",
		}},
		{"tls.bad.yaml", []string{
			"2:12: tls.ca_file: cannot read ",
			"3:11: operator: give both cert_file and key_file, or neither",
			"3:23: operator.cert_file: cannot read ",
			`7:22: sites[0].etcd.peer_url: "http://10.1.0.10:2380" uses http but tls.ca_file is set`,
			"8:22: sites[0].tls.cert_file: cannot read ",
			"8:54: sites[0].tls.key_file: cannot read ",
			"9:5: sites[1].tls: cert_file and key_file are needed because tls.ca_file is set",
			"16:22: sites[2].tls.cert_file: cannot read ",
			"16:55: sites[2].tls.key_file: cannot read ",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			_, probs, err := config.Check(path, driver.Types())
			if err != nil {
				t.Fatal(err)
			}
			errs := config.Errors(probs)
			var got []string
			for _, p := range errs {
				got = append(got, p.String())
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := 0; i < len(got) && i < len(tt.want); i++ {
				if want := path + ":" + tt.want[i]; !strings.HasPrefix(got[i], want) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], want)
				}
			}
			if _, err := config.Load(path, driver.Types()); err == nil {
				t.Error("Load accepted a broken file")
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A fourth voting location makes an even count.
	even := strings.Replace(string(data), "groups:", `  - name: paris
    role: witness
    agent: {address: "10.4.0.10:7400"}
    etcd: {peer_url: "http://10.4.0.10:2380", client_url: "http://10.4.0.10:2379"}
groups:`, 1)
	_, probs := config.Parse("even.yaml", []byte(even), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	var warnings []string
	for _, p := range probs {
		warnings = append(warnings, p.Field+": "+p.Msg)
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{"tls: TLS is off", "sites: 4 voting locations tolerate 1 lost location(s), no more than 3 would"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing warning %q in:\n%s", want, joined)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), driver.Types())
	if err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("want an error that says how to name the file, got %v", err)
	}
}

func TestCoordinationLimits(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "lease_ttl: 3s", "lease_ttl: 1s\n  heartbeat_interval: 300ms", 1)
	_, probs := config.Parse("c.yaml", []byte(bad), driver.Types())
	var got []string
	for _, p := range config.Errors(probs) {
		got = append(got, p.String())
	}
	want := []string{
		"c.yaml:4:3: coordination.election_timeout: must be at least 5 times heartbeat_interval (300ms), or members keep starting elections",
		"c.yaml:4:14: coordination.lease_ttl: 1s is shorter than 1.5 × election_timeout (1.5s); etcd would silently grant a longer lease",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
