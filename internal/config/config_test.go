package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
			"2:1: colour: unknown field (known fields: access, coordination, groups, levels, min_site_distance, name, operator, sites, tls)",
			"7:5: sites[0].rack: unknown field (known fields: agent, bubble, etcd, location, name, role, tls)",
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
			`24:15: groups[0].resources[1].type: unknown resource type "service-mesh" (known: approval, bgp, check, dns, haproxy, mariadb, postgres, script, service, vrf)`,
			"25:21: groups[0].resources[1].depends_on: dependency cycle: app → cache → app",
			`26:16: groups[0].resources[1].sites: resource "app" is missing at site "brussels"`,
			`26:16: groups[0].resources[1].sites: resource "app" is missing at site "antwerp"`,
			"31:45: groups[0].resources[2].sites.brussels.port: 70000 is out of range",
			`31:62: groups[0].resources[2].sites.brussels.data_dir: "srv/cache" must be an absolute path`,
			`34:21: groups[1].preferred_site: "frankfurt" is a witness`,
			`35:16: groups[1].resources: group "crm" has no resources`,
			`42:78: groups[2].resources[0].sites.brussels.application_name: "shop" is also the application_name at antwerp`,
			"46:22: groups[2].resources[1].synchronous: bgp resources cannot be synchronous (types that can: mariadb, postgres)",
		}},
		{"values.bad.yaml", []string{
			`2:21: coordination.election_timeout: "soon" is not a duration`,
			"3:16: coordination.serve_lease: 100ms is too short",
			"4:17: coordination.fence_margin: 10ms is too short",
			`6:11: sites[0].name: site name "Brussels" must be lowercase letters, digits, '-' or '_', starting and ending with a letter or digit: write "brussels" (names are compared exactly`,
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
		// An explicit 0 is kept and checked, not replaced by the default.
		{"durations.bad.yaml", []string{
			"2:23: coordination.heartbeat_interval: 0s: must be above zero; leave it out for the default (100ms)",
			"3:21: coordination.election_timeout: 0s: must be above zero; leave it out for the default (1s)",
			"4:14: coordination.lease_ttl: 0s: must be above zero; leave it out for the default (3s)",
			"5:19: coordination.probe_interval: 0s: must be above zero; leave it out for the default (500ms)",
			"6:18: coordination.probe_timeout: 0s: must be above zero; leave it out for the default (1s)",
			"7:16: coordination.serve_lease: 0s is too short",
			`22:20: groups[0].max_data_loss: "-1s" is negative`,
			"23:17: groups[0].rto_target: 0s: must be above zero; leave it out for the default (30s)",
			`24:18: groups[0].flap_period: "-10m" is negative`,
		}},
		// Nested aliases that would expand to billions of nodes are refused
		// before anything follows them, at the alias that breaks the limit.
		{"aliases.bad.yaml", []string{
			"6:8: aliases expand this document to more than 10000 nodes; write the values out instead",
		}},
		{"access.bad.yaml", []string{
			`3:16: access[1].identity: is missing`,
			`4:16: access[2].identity: "bell\a" has characters that are not printable`,
			`5:16: access[3].identity: "ada" is listed twice (first at access[0])`,
			`6:5: access[4].role: is missing: use viewer, operator or admin`,
			`7:28: access[5].role: "root" is not a role: use viewer, operator or admin`,
			`8:16: access[6].identity: "lyon" is a location's name, and so its certificate's: give the person or program a certificate of their own`,
			`11:55: sites[0].agent.lease_address: "10.1.0.10" is not host:port`,
			`14:12: sites[1].agent: agent.address has port 65535, so lease_address has no default (port + 1); set lease_address`,
			`18:55: sites[2].agent.lease_address: address 10.3.0.10:7400 is already used by sites[2].agent.address`,
			`22:12: sites[3].agent.lease_address: address 10.3.0.10:7400 (the default: agent port + 1) is already used by sites[2].agent.address; set lease_address to a free host:port`,
			`26:55: sites[4].agent.lease_address: port "0" is not a number from 1 to 65535`,
		}},
		{"drill.bad.yaml", []string{
			"16:12: groups[0].drill.every: is missing: say how often the group is drilled, like 168h for once a week",
			`16:21: groups[0].drill.window: "Sam 02:00-05:00" is not a window ("Sam" is not a day): write it like "Sat 02:00-05:00"`,
			`16:50: groups[0].drill.timezone: "Europe/Bruxelles" is not a time zone: name one like Europe/Brussels or UTC`,
			`16:72: groups[0].drill.at: "frankfurt" is not a site of group "webshop" (its sites: brussels, antwerp); leave it out to drill at the standby`,
			"16:83: groups[0].drill.often: unknown field (known fields: at, every, keep, max_age, timezone, window)",
			"26:14: groups[1].drill.every: 0s: must be above zero, like 168h for once a week",
			`27:15: groups[1].drill.window: "Sat 25:00-05:00" is not a window ("25:00" is past 23:59)`,
			`28:17: groups[1].drill.timezone: "Local" differs from machine to machine: name the zone, like Europe/Brussels`,
			`29:13: groups[1].drill.keep: "-5m" is negative`,
			"30:16: groups[1].drill.max_age: 0s: must be above zero; leave it out for twice every",
			`39:33: groups[2].drill.window: "02:00-02:00" is not a window (it starts when it ends; for a whole day write 00:00-24:00)`,
		}},
		// Labels are typed on the command line (--label KEY=VALUE) and shown
		// in tables; a non-printable key stays out of the field's path.
		{"labels.bad.yaml", []string{
			"17:13: groups[0].labels.tier: the label has no value: give it one, or leave the label out",
			`18:17: groups[0].labels: key "bell\a" has characters that are not printable`,
			"19:18: groups[0].labels.team lead: the key holds '=' or a blank: a label is selected with --label KEY=VALUE",
			"20:14: groups[0].labels.a=b: the key holds '=' or a blank",
			`21:14: groups[0].labels.owner: the value "tab\there" has characters that are not printable`,
			"22:82: groups[0].labels.this-key-is-far-too-long-for-a-label-that-people-type-on-the-command-line: the key is 73 bytes long: keep label keys to 63 or fewer",
			"23:19: groups[0].labels.cost-centre: the label has no value",
			"24:13: groups[0].labels.note: expected a string, found a list",
			"25:11: groups[0].labels: a label has an empty key: name it, like tier: gold",
			"26:14: groups[0].labels.about: the value is 78 bytes long: keep label values to 63 or fewer",
			"44:13: groups[2].labels: expected a block of fields, found a list",
		}},
		{"claims.bad.yaml", []string{
			"21:28: groups[1].resources[0].sites.brussels.name: dns name db.shop.example. on 10.1.0.10:53 is claimed twice at site brussels, by group webshop, resource name (groups[0].resources[0].sites.brussels.name) and by group crm, resource name; the agent there would refuse to start: give one of them another name or another serve address",
		}},
		// A unix socket in the data dir makes pg_rewind fail, so no old
		// primary could ever rejoin: refused before it is found out.
		{"postgres.bad.yaml", []string{
			`20:70: groups[0].resources[0].sites.brussels.socket_dir: "/srv/pg/run" is inside data_dir "/srv/pg": pg_rewind copies the data dir and fails on the socket file, so every rejoin of an old primary would fail; set socket_dir to a directory outside the data dir, e.g. /srv/pg.run`,
			`21:70: groups[0].resources[0].sites.antwerp.socket_dir: "/srv/pg" is inside data_dir "/srv/pg/"`,
			`28:71: groups[1].resources[0].sites.brussels.socket_dir: "run/crm" must be an absolute path`,
		}},
		// Levels name locations and links that exist, and an area by its
		// centre and radius together; location names may hold '-'.
		{"levels.bad.yaml", []string{
			`3:20: min_site_distance: "far" is not a distance: write it with its unit, like 100km, 500m or 30mi`,
			"5:32: sites[0].location: give both latitude and longitude (decimal degrees, like {latitude: 50.85, longitude: 4.35}), or leave location out",
			"12:5: levels[0].name: level name is missing",
			"12:5: levels[0]: the level takes nothing: give lose (the locations destroyed), lose_links (the links cut, as LOCATION-LOCATION) or at and radius (the area destroyed)",
			`13:11: levels[1].name: level name "Fire" must be lowercase letters`,
			`14:22: levels[1].lose[1]: "paris" is not a location (locations: brussels, antwerp, liege, liege-east, east-antwerp, frankfurt)`,
			`14:29: levels[1].lose[2]: "brussels" is listed twice`,
			`16:36: levels[2].lose_links[1]: "antwerp-brussels" is the link levels[2].lose_links[0] already lists (a link is cut both ways)`,
			`16:54: levels[2].lose_links[2]: "brussels-brussels" joins brussels to itself: a link is between two different locations`,
			`16:73: levels[2].lose_links[3]: "brussels-paris" is not a link between two locations: write it LOCATION-LOCATION, like brussels-antwerp (locations: brussels, antwerp, liege, liege-east, east-antwerp, frankfurt)`,
			`16:89: levels[2].lose_links[4]: "brussels" is not a link between two locations`,
			`16:99: levels[2].lose_links[5]: "liege-east-antwerp" can be read as liege and east-antwerp or as liege-east and antwerp: rename a location, so that no two names joined by '-' make a third's`,
			"17:5: levels[3].radius: is missing: at and radius go together; give the radius of the area destroyed, like 60km",
			`17:11: levels[3].name: level "cut" is defined twice (first at levels[2])`,
			"19:5: levels[4].at: is missing: at and radius go together; give the centre of the area destroyed as LATITUDE,LONGITUDE, like 50.85,4.35",
			`22:9: levels[5].at: "95,4.35" is not on the Earth: latitude goes from -90 to 90 and longitude from -180 to 180`,
			"23:13: levels[5].radius: must be above zero: give the radius of the area destroyed, like 60km",
			`25:9: levels[6].at: "north of brussels" is not a place: write it as LATITUDE,LONGITUDE in decimal degrees, like 50.85,4.35`,
			`26:13: levels[6].radius: "100" is not a distance: write it with its unit, like 100km, 500m or 30mi`,
			`29:13: levels[7].radius: "-5km" is negative: a distance is 0 or more`,
		}},
		// Every site of the group, and only those, says where it reaches a
		// dependency, with the fields of its type and no other.
		{"requires.bad.yaml", []string{
			"27:11: groups[0].requires[0].sites: give antwerp's address for ldap: every site of the group probes it from where it is",
			"27:52: groups[0].requires[0].sites.brussels.url: is not a field of type tcp (its fields: address and at)",
			`27:76: groups[0].requires[0].sites.brussels.at: "paris" is not a location (locations: brussels, antwerp, frankfurt): name the location that hosts ldap, or leave at out`,
			`28:22: groups[0].requires[0].sites.frankfurt: "frankfurt" is not a site of group "webshop" (its sites: brussels, antwerp): only the group's sites probe its dependencies; remove the entry`,
			"29:9: groups[0].requires[1].type: is missing: use tcp, http, dns or sql",
			`29:15: groups[0].requires[1].name: dependency "ldap" is defined twice in group "webshop" (first at groups[0].requires[0])`,
			`31:15: groups[0].requires[2].name: dependency name "Web" must be lowercase letters`,
			`34:27: groups[0].requires[2].sites.brussels.url: "ftp://10.1.0.7/" is not an http or https URL with a host, like https://10.1.0.5/health`,
			"35:67: groups[0].requires[2].sites.antwerp.expect_status: 99 is not an HTTP status: give one from 100 to 599, or leave it out for any 2xx or 3xx",
			`39:31: groups[0].requires[3].sites.brussels.address: "10.1.0.53" is not host:port`,
			`39:80: groups[0].requires[3].sites.brussels.qtype: "BOGUS" is not a DNS record type: use A, AAAA, SRV, MX, TXT … (default A)`,
			`40:53: groups[0].requires[3].sites.antwerp.query: "not a name" is not a domain name: give the name to ask for, like ldap.shop.example.`,
			"44:18: groups[0].requires[4].timeout: 2s is not shorter than interval (1s): a probe must end before the next one starts; shorten timeout or lengthen interval",
			`46:30: groups[0].requires[4].sites.brussels.engine: "oracle" is not an engine: use postgres or mariadb`,
			"46:83: groups[0].requires[4].sites.brussels.dsn_env: dsn and dsn_env are both set: give only one of them",
			`47:48: groups[0].requires[4].sites.antwerp.dsn_env: "1BAD" is not an environment variable name: use letters, digits and underscores, like LDAP_DB_DSN`,
			`49:15: groups[0].requires[5].type: "smtp" is not a dependency type: use tcp, http, dns or sql`,
			"50:19: groups[0].requires[5].interval: 0s: must be above zero; leave it out for the default (5s)",
			"55:21: groups[0].requires[6].sites.brussels: give dsn_env, the environment variable that holds the connection string, or dsn when the string holds no password",
			"56:65: groups[0].requires[6].sites.antwerp.query: is not a field of type sql (its fields: engine, dsn, dsn_env and at)",
			"59:18: groups[0].requires[7].timeout: 0s: must be above zero; leave it out for the default (2s)",
			"60:27: groups[0].requires[7].sites.brussels.address: is missing: give the host:port where brussels reaches licence, like 10.1.0.5:389",
			`60:50: groups[0].requires[7].sites.antwerp.address: port "70000" is not a number from 1 to 65535`,
			"63:83: groups[0].requires[8].sites.antwerp.url: is missing: give the URL antwerp asks for web2, like https://10.1.0.5/health",
			"63:93: groups[0].requires[8].sites.antwerp.address: is not a field of type http (its fields: url, expect_status and at)",
		}},
		{"tls.bad.yaml", []string{
			"2:12: tls.ca_file: cannot read ",
			// Each machine holds only its own key: the files of the
			// locations and the operator are not looked for here but by
			// whoever uses them (TestOwnKeyOnly).
			"3:11: operator: give both cert_file and key_file, or neither",
			`7:22: sites[0].etcd.peer_url: "http://10.1.0.10:2380" uses http but tls.ca_file is set`,
			"9:5: sites[1].tls: cert_file and key_file are needed because tls.ca_file is set",
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

// edited is good.yaml with each old string replaced by its new one.
func edited(t *testing.T, oldNew ...string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("good.yaml has no %q", oldNew[i])
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	return s
}

// withTLS turns TLS on in a topology written to a folder where the
// certificate files exist, and returns the file's path.
func withTLS(t *testing.T, topo string) string {
	t.Helper()
	dir := t.TempDir()
	// Only the CA: the locations' certificates and keys are elsewhere.
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	topo = strings.ReplaceAll(topo, "http://", "https://")
	topo = strings.ReplaceAll(topo, "    etcd:", "    tls: {cert_file: site.crt, key_file: site.key}\n    etcd:")
	topo = strings.Replace(topo, "sites:", "tls: {ca_file: ca.crt}\nsites:", 1)
	path := filepath.Join(dir, "tls.yaml")
	if err := os.WriteFile(path, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWarnings(t *testing.T) {
	const (
		tlsOff = "tls: TLS is off"
		noSync = "groups[0].max_data_loss: automatic failover never goes ahead: only a synchronous standby loses nothing; set synchronous: true or a max_data_loss above serve_lease"
		cutOff = "groups[0].max_data_loss: a cut-off primary acknowledges writes for up to serve_lease before it fences itself, so an asynchronous failover may lose that much: automatic failover never goes ahead; raise max_data_loss above serve_lease"
		nobody = "access: nobody can start a run: bind a person's certificate name to operator or admin under access"
		sync   = "type: postgres\n        synchronous: true"
		db     = `      - name: db
        type: postgres
        sites:
          brussels: {host: 10.1.0.20, data_dir: /srv/pg, password_env: PGPW}
          antwerp: {host: 10.2.0.20, data_dir: /srv/pg, password_env: PGPW}
`
		vip = `      - name: vip
        type: bgp
        sites:
          brussels: {asn: 65001, neighbors: [{address: 10.1.0.1, asn: 65000}], prefixes: [10.77.0.10/32], next_hop: 10.1.0.20}
          antwerp: {asn: 65002, neighbors: [{address: 10.2.0.1, asn: 65000}], prefixes: [10.77.0.10/32], next_hop: 10.2.0.20}
`
		another = vip + `      - name: cache
        type: postgres
        sites:
          brussels: {host: 10.1.0.30, data_dir: /srv/cache, password_env: PGPW}
          antwerp: {host: 10.2.0.30, data_dir: /srv/cache, password_env: PGPW}
`
	)
	tests := []struct {
		name    string
		path    func(t *testing.T) string
		want    []string // warnings, as "field: message" prefixes
		notWant []string
	}{
		{"a fourth voting location makes an even count", func(t *testing.T) string {
			return write(t, edited(t, "groups:", `  - name: paris
    role: witness
    agent: {address: "10.4.0.10:7400"}
    etcd: {peer_url: "http://10.4.0.10:2380", client_url: "http://10.4.0.10:2379"}
groups:`))
		}, []string{tlsOff, "sites: 4 voting locations tolerate 1 lost location(s), no more than 3 would"}, nil},
		{"max_data_loss 0, asynchronous", func(t *testing.T) string {
			return write(t, edited(t, "max_data_loss: 2s", "max_data_loss: 0s"))
		}, []string{noSync}, []string{cutOff}},
		{"max_data_loss 0, synchronous", func(t *testing.T) string {
			return write(t, edited(t, "max_data_loss: 2s", "max_data_loss: 0s", "type: postgres", sync))
		}, nil, []string{noSync, cutOff}},
		{"max_data_loss 0, one synchronous and one asynchronous database", func(t *testing.T) string {
			return write(t, edited(t, "max_data_loss: 2s", "max_data_loss: 0s", "type: postgres", sync)+another)
		}, []string{cutOff + " (400ms)"}, []string{noSync}},
		{"max_data_loss 0, only network resources", func(t *testing.T) string {
			return write(t, edited(t, "max_data_loss: 2s", "max_data_loss: 0s", db, vip))
		}, nil, []string{noSync, cutOff}},
		{"max_data_loss equal to serve_lease", func(t *testing.T) string {
			return write(t, edited(t, "max_data_loss: 2s", "max_data_loss: 400ms"))
		}, []string{cutOff + " (400ms)"}, []string{noSync}},
		{"max_data_loss below a longer serve_lease", func(t *testing.T) string {
			return write(t, edited(t, "lease_ttl: 3s", "lease_ttl: 3s\n  serve_lease: 3s"))
		}, []string{cutOff + " (3s)"}, nil},
		{"max_data_loss below serve_lease, synchronous", func(t *testing.T) string {
			return write(t, edited(t, "lease_ttl: 3s", "lease_ttl: 3s\n  serve_lease: 3s", "type: postgres", sync))
		}, nil, []string{cutOff}},
		{"max_data_loss above serve_lease", func(t *testing.T) string {
			return write(t, edited(t))
		}, []string{tlsOff}, []string{noSync, cutOff, nobody}},
		{"TLS on, nobody bound", func(t *testing.T) string {
			return withTLS(t, edited(t))
		}, []string{nobody}, []string{tlsOff}},
		{"TLS on, only viewers", func(t *testing.T) string {
			return withTLS(t, edited(t, "sites:", "access: [{identity: vera, role: viewer}]\nsites:"))
		}, []string{nobody}, nil},
		{"TLS on, an operator", func(t *testing.T) string {
			return withTLS(t, edited(t, "sites:", "access: [{identity: vera, role: viewer}, {identity: otto, role: operator}]\nsites:"))
		}, nil, []string{nobody}},
		{"TLS on, an admin", func(t *testing.T) string {
			return withTLS(t, edited(t, "sites:", "access: [{identity: ada, role: admin}]\nsites:"))
		}, nil, []string{nobody}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, probs, err := config.Check(tt.path(t), driver.Types())
			if err != nil {
				t.Fatal(err)
			}
			if errs := config.Errors(probs); len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			var warnings []string
			for _, p := range probs {
				warnings = append(warnings, p.Field+": "+p.Msg)
			}
			has := func(prefix string) bool {
				for _, w := range warnings {
					if strings.HasPrefix(w, prefix) {
						return true
					}
				}
				return false
			}
			for _, w := range tt.want {
				if !has(w) {
					t.Errorf("missing warning %q in:\n%s", w, strings.Join(warnings, "\n"))
				}
			}
			for _, w := range tt.notWant {
				if has(w) {
					t.Errorf("unwanted warning %q in:\n%s", w, strings.Join(warnings, "\n"))
				}
			}
		})
	}
}

func write(t *testing.T, topo string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDurations: a duration left out gets its default; one written, even
// 0, is kept.
func TestDurations(t *testing.T) {
	type durations struct {
		MaxDataLoss, RTOTarget, FlapPeriod, FlapConfirm, ServeLease, FenceMargin, ProbeTimeout time.Duration
	}
	defaults := durations{5 * time.Second, 30 * time.Second, 10 * time.Minute, 10 * time.Second, 400 * time.Millisecond, 250 * time.Millisecond, time.Second}
	tests := []struct {
		name  string
		edits []string
		want  func(d *durations)
	}{
		{"defaults", []string{"    max_data_loss: 2s\n", ""}, func(d *durations) {}},
		{"max_data_loss 0", []string{"max_data_loss: 2s", "max_data_loss: 0s"}, func(d *durations) { d.MaxDataLoss = 0 }},
		{"max_data_loss 0 written as a number", []string{"max_data_loss: 2s", "max_data_loss: 0"}, func(d *durations) { d.MaxDataLoss = 0 }},
		{"no damping", []string{"max_data_loss: 2s", "max_data_loss: 5s\n    flap_period: 0s\n    flap_confirm: 0s"}, func(d *durations) {
			d.FlapPeriod, d.FlapConfirm = 0, 0
		}},
		{"written values", []string{
			"max_data_loss: 2s", "max_data_loss: 3s\n    rto_target: 1m\n    flap_period: 1h\n    flap_confirm: 1s",
			"lease_ttl: 3s", "lease_ttl: 3s\n  serve_lease: 2s\n  fence_margin: 1s\n  probe_timeout: 2s",
		}, func(d *durations) {
			*d = durations{3 * time.Second, time.Minute, time.Hour, time.Second, 2 * time.Second, time.Second, 2 * time.Second}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, probs := config.Parse("d.yaml", []byte(edited(t, tt.edits...)), driver.Types())
			if errs := config.Errors(probs); len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			g := topo.Groups[0]
			c := topo.Coordination
			for name, d := range map[string]*config.Duration{
				"max_data_loss": g.MaxDataLoss, "rto_target": g.RTOTarget, "flap_period": g.FlapPeriod, "flap_confirm": g.FlapConfirm,
				"heartbeat_interval": c.HeartbeatInterval, "election_timeout": c.ElectionTimeout, "lease_ttl": c.LeaseTTL,
				"probe_interval": c.ProbeInterval, "probe_timeout": c.ProbeTimeout, "serve_lease": c.ServeLease, "fence_margin": c.FenceMargin,
			} {
				if d == nil {
					t.Errorf("%s is nil after Load", name)
				}
			}
			want := defaults
			tt.want(&want)
			got := durations{g.MaxDataLoss.D(), g.RTOTarget.D(), g.FlapPeriod.D(), g.FlapConfirm.D(), c.ServeLease.D(), c.FenceMargin.D(), c.ProbeTimeout.D()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	var unset *config.Duration
	if unset.D() != 0 {
		t.Errorf("a nil duration is %s, want 0", unset.D())
	}
}

func TestLeaseAddress(t *testing.T) {
	tests := []struct {
		name, agent, want string
	}{
		{"default: the next port", `agent: {address: "10.1.0.10:7400"}`, "10.1.0.10:7401"},
		{"default with a host name", `agent: {address: "db1.example:7400"}`, "db1.example:7401"},
		{"default with IPv6", `agent: {address: "[fd00::10]:7400"}`, "[fd00::10]:7401"},
		{"written", `agent: {address: "10.1.0.10:7400", lease_address: "10.1.0.11:9000"}`, "10.1.0.11:9000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, probs := config.Parse("l.yaml", []byte(edited(t, `agent: {address: "10.1.0.10:7400"}`, tt.agent)), driver.Types())
			if errs := config.Errors(probs); len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			s, _ := topo.Site("brussels")
			if s.Agent.LeaseAddress != tt.want {
				t.Errorf("lease_address = %q, want %q", s.Agent.LeaseAddress, tt.want)
			}
		})
	}
}

func TestRoleOf(t *testing.T) {
	topo, probs := config.Parse("a.yaml", []byte(edited(t, "sites:",
		"access:\n  - {identity: ada, role: admin}\n  - {identity: \"Otto Op\", role: operator}\n  - {identity: vera, role: viewer}\nsites:")), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	tests := []struct {
		identity, role string
		ok             bool
	}{
		{"ada", config.AccessAdmin, true},
		{"Otto Op", config.AccessOperator, true},
		{"vera", config.AccessViewer, true},
		{"brussels", "", false},
		{"", "", false},
		{"ADA", "", false},
	}
	for _, tt := range tests {
		if role, ok := topo.RoleOf(tt.identity); role != tt.role || ok != tt.ok {
			t.Errorf("RoleOf(%q) = %q, %v; want %q, %v", tt.identity, role, ok, tt.role, tt.ok)
		}
	}
}

// TestAliases: a few anchors and aliases work; too many aliases, aliases
// that expand too far and aliases into themselves are refused before
// anything follows them.
func TestAliases(t *testing.T) {
	topo, err := config.Load("testdata/aliases.good.yaml", driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	crm, _ := topo.Group("crm")
	if want := []string{"brussels", "antwerp"}; !cmp.Equal(crm.Sites, want) || crm.MaxDataLoss.D() != 2*time.Second {
		t.Errorf("aliased values: sites %v, max_data_loss %s", crm.Sites, crm.MaxDataLoss.D())
	}
	if got := topo.Coordination.ProbeTimeout.D(); got != time.Second {
		t.Errorf("aliased probe_timeout: %s", got)
	}

	many := "x: &x 1\n" + "y: [" + strings.Repeat("*x, ", 100) + "*x]\n"
	exactly := "x: &x 1\n" + "y: [" + strings.Repeat("*x, ", 99) + "*x]\n"
	// 99 aliases of a list of 100 scalars: 9,900 nodes and the rest.
	wide := "x: &x [" + strings.Repeat("1, ", 99) + "1]\n" + "y: [" + strings.Repeat("*x, ", 98) + "*x]\n"
	tests := []struct {
		name, doc, want string
	}{
		{"101 aliases", many, "m.yaml:2:405: more than 100 aliases in this document; write the values out instead"},
		{"100 aliases", exactly, ""},
		{"expands past the limit", wide, "m.yaml:2:393: aliases expand this document to more than 10000 nodes; write the values out instead"},
		{"alias into itself", "a: &x [1, *x]\n", "m.yaml:1:11: alias *x refers to a value that contains it"},
		{"alias into its own mapping", "a: &x {b: {c: *x}}\n", "m.yaml:1:15: alias *x refers to a value that contains it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, probs := config.Parse("m.yaml", []byte(tt.doc), driver.Types())
			var got string
			for _, p := range probs {
				if strings.Contains(p.Msg, "alias") {
					got = p.String()
				}
			}
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if tt.want != "" && len(probs) != 1 {
				t.Errorf("a refused document has one problem, got %v", probs)
			}
		})
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

// A whole stack is linted as a serious operator would want: a service
// without a health probe, a script without a timeout, an app that does not
// depend on its database, an approval in a group that fails over by
// itself.
func TestStackLint(t *testing.T) {
	stack := `
      - name: storage
        type: script
        sites:
          brussels: {promote: [/usr/local/bin/flip, read-write]}
          antwerp: {promote: [/usr/local/bin/flip, read-write], timeout: 5m}
      - name: app
        type: service
        depends_on: [storage]
        sites:
          brussels: {unit: shop-app.service}
          antwerp: {unit: shop-app.service, health: {tcp: {address: "10.2.0.30:8080"}}}
      - name: ok
        type: approval
        sites:
          brussels: {message: "storage read-write?"}
          antwerp: {}`
	db := "antwerp: {host: 10.2.0.20, data_dir: /srv/pg, password_env: PGPW}\n"
	doc := edited(t, db, db+stack[1:]+"\n", "policy: manual", "policy: automatic")
	_, probs := config.Parse("s.yaml", []byte(doc), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.Field+": "+p.Msg)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"groups[0].resources[1].sites.brussels.timeout: a script without a timeout",
		"groups[0].resources[2].sites.brussels.health: a service without a health probe",
		"groups[0].resources[2].depends_on: service app does not depend on a database of group webshop",
		"groups[0].resources[3].sites.brussels: group webshop has policy: automatic, but an automatic failover waits at this approval",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no warning %q in:\n%s", want, all)
		}
	}
	for _, unwanted := range []string{"resources[1].sites.antwerp.timeout", "resources[2].sites.antwerp.health"} {
		if strings.Contains(all, unwanted) {
			t.Errorf("a warning about %s, which is set:\n%s", unwanted, all)
		}
	}
}

func TestPriorities(t *testing.T) {
	stack := `
      - name: app
        type: service
        priority: %d
        depends_on: [db]
        sites:
          brussels: {unit: app.service, health: {tcp: {address: "10.1.0.30:80"}}}
          antwerp: {unit: app.service, health: {tcp: {address: "10.2.0.30:80"}}}`
	db := "antwerp: {host: 10.2.0.20, data_dir: /srv/pg, password_env: PGPW}\n"
	for _, tt := range []struct {
		app  int
		want string
	}{
		{app: 3}, // db has none: 3, the default
		{app: 4},
		{app: 6, want: "groups[0].resources[1].priority: priority 6: use 1 (first) to 5 (last)"},
		{app: 2, want: "groups[0].resources[1].depends_on[0]: app (priority 2) depends on db (priority 3), which is recovered later: give db priority 2 or less, or app priority 3 or more"},
	} {
		doc := edited(t, db, db+fmt.Sprintf(stack[1:], tt.app)+"\n")
		_, probs := config.Parse("p.yaml", []byte(doc), driver.Types())
		var errs []string
		for _, p := range config.Errors(probs) {
			errs = append(errs, p.Field+": "+p.Msg)
		}
		switch {
		case tt.want == "" && len(errs) > 0:
			t.Errorf("priority %d: unexpected errors %v", tt.app, errs)
		case tt.want != "" && !slices.Contains(errs, tt.want):
			t.Errorf("priority %d: errors %v, want %q", tt.app, errs, tt.want)
		}
	}
}

// A dns name on an address is held by one resource at a site, whatever its
// group: the agent there would refuse to start the second.
func TestClaims(t *testing.T) {
	// name is a dns resource answering dnsName on bServe at brussels and
	// aServe at antwerp.
	name := func(res, dnsName, bServe, aServe string) string {
		return fmt.Sprintf(`      - name: %s
        type: dns
        sites:
          brussels: {name: %s, address: 10.1.0.20, serve: %q}
          antwerp: {name: %s, address: 10.2.0.20, serve: %q}
`, res, dnsName, bServe, dnsName, aServe)
	}
	const crm = "  - name: crm\n    preferred_site: brussels\n    resources:\n"
	for _, tt := range []struct {
		name         string
		webshop, crm string // resources appended to each group
		want         []string
	}{
		{"other names on one address",
			name("name", "db.shop.example.", "10.1.0.10:53", "10.2.0.10:53"),
			name("name", "crm.shop.example.", "10.1.0.10:53", "10.2.0.10:53"), nil},
		{"one name on other addresses",
			name("name", "db.shop.example.", "10.1.0.10:53", "10.2.0.10:53"),
			name("name", "db.shop.example.", "10.1.0.10:5353", "10.2.0.10:5353"), nil},
		{"one name and address at different sites",
			name("name", "db.shop.example.", "127.0.0.1:5353", "10.2.0.10:53"),
			name("name", "db.shop.example.", "10.1.0.10:53", "127.0.0.1:5353"), nil},
		{"one name and address in two groups",
			name("name", "db.shop.example.", "10.1.0.10:53", "10.2.0.10:53"),
			name("name", "db.shop.example.", "10.1.0.10:53", "10.2.0.10:5353"), []string{
				"groups[1].resources[0].sites.brussels.name: dns name db.shop.example. on 10.1.0.10:53 is claimed twice at site brussels, by group webshop, resource name (groups[0].resources[1].sites.brussels.name) and by group crm, resource name; the agent there would refuse to start: give one of them another name or another serve address",
			}},
		{"one name and address twice in one group, spelled two ways",
			name("name", "db.shop.example.", "[2001:db8::10]:53", "10.2.0.10:53") + name("alias", "DB.shop.example.", "[2001:DB8:0::10]:53", "10.2.0.10:53"),
			name("name", "crm.shop.example.", "10.1.0.10:53", "10.2.0.10:53"), []string{
				"groups[0].resources[2].sites.brussels.name: dns name db.shop.example. on [2001:db8::10]:53 is claimed twice at site brussels, by group webshop, resource name (groups[0].resources[1].sites.brussels.name) and by group webshop, resource alias; the agent there would refuse to start: give one of them another name or another serve address",
				"groups[0].resources[2].sites.antwerp.name: dns name db.shop.example. on 10.2.0.10:53 is claimed twice at site antwerp, by group webshop, resource name (groups[0].resources[1].sites.antwerp.name) and by group webshop, resource alias; the agent there would refuse to start: give one of them another name or another serve address",
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := edited(t) + tt.webshop + crm + tt.crm
			_, probs := config.Parse("c.yaml", []byte(doc), driver.Types())
			var got []string
			for _, p := range config.Errors(probs) {
				got = append(got, p.Field+": "+p.Msg)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// Labels are kept as written, a value with blanks and punctuation too.
func TestLabels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "labels.yaml")
	topo := edited(t, "    policy: manual\n", "    policy: manual\n    labels: {tier: gold, team: \"payments & billing\"}\n")
	if err := os.WriteFile(path, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load(path, driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	g, _ := loaded.Group("webshop")
	if want := map[string]string{"tier": "gold", "team": "payments & billing"}; !cmp.Equal(g.Labels, want) {
		t.Errorf("labels: %s", cmp.Diff(want, g.Labels))
	}
}

// TestThreeSites: three sites decide among themselves without a witness,
// a group spans all three by default, and a synchronous resource, which
// confirms each commit at one standby, is refused in a group of three.
func TestThreeSites(t *testing.T) {
	three := edited(t, `  - name: frankfurt
    role: witness
    agent: {address: "10.3.0.10:7400"}`, `  - name: liege
    role: site
    agent: {address: "10.3.0.10:7400"}`,
		`          antwerp: {host: 10.2.0.20, data_dir: /srv/pg, password_env: PGPW}`,
		"          antwerp: {host: 10.2.0.20, data_dir: /srv/pg, password_env: PGPW}\n          liege: {host: 10.3.0.20, data_dir: /srv/pg, password_env: PGPW}")
	topo, probs := config.Parse("three.yaml", []byte(three), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("three sites without a witness refused: %v", errs)
	}
	g, _ := topo.Group("webshop")
	if want := []string{"brussels", "antwerp", "liege"}; !cmp.Equal(g.Sites, want) {
		t.Errorf("group sites: %s", cmp.Diff(want, g.Sites))
	}
	if g.Resources[0].ComparePositions == nil {
		t.Error("a postgres resource has no ComparePositions")
	}

	sync := strings.Replace(three, "        type: postgres\n", "        type: postgres\n        synchronous: true\n", 1)
	_, probs = config.Parse("three.yaml", []byte(sync), driver.Types())
	var got []string
	for _, p := range config.Errors(probs) {
		got = append(got, p.Field+": "+p.Msg)
	}
	want := `groups[0].resources[0].synchronous: group "webshop" spans 3 sites; a synchronous resource confirms each commit at one standby, so it needs a group of exactly two sites`
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("errors: %q, want one beginning %q", got, want)
	}
}
