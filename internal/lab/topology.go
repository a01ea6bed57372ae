package lab

import (
	"cmp"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// location is one place of the lab.
type location struct {
	name     string
	role     string
	ip       string
	lat, lon float64
	postgres bool
}

// locations are the default lab's three places: two sites and a witness,
// each on its own loopback address.
var locations = []location{
	{name: "brussels", role: "site", ip: "127.0.1.1", lat: 50.8503, lon: 4.3517, postgres: true},
	{name: "antwerp", role: "site", ip: "127.0.2.1", lat: 51.2194, lon: 4.4025, postgres: true},
	{name: "frankfurt", role: "witness", ip: "127.0.3.1", lat: 50.1109, lon: 8.6821},
}

// thirdSite is what Options.Sites 3 adds. Three sites need no witness:
// they outvote a lost one among themselves, and three voting locations
// are an odd number (docs/design/sites.md). One etcd member fewer than
// with a witness too.
var thirdSite = location{name: "liege", role: "site", ip: "127.0.4.1", lat: 50.6326, lon: 5.5797, postgres: true}

// labLocations are the places of a lab of sites sites (Options.Sites):
// the default's, or with 3 brussels, antwerp and liege.
func labLocations(sites int) []location {
	if sites != 3 {
		return slices.Clone(locations)
	}
	return []location{locations[0], locations[1], thirdSite}
}

// Ports every location uses on its own address.
const (
	agentPort      = 7400
	leasePort      = 7401 // the default: the agent's port + 1
	etcdClientPort = 2379
	etcdPeerPort   = 2380
	postgresPort   = 5432
	dnsPort        = 5353 // not 53: the lab runs without root too
)

// group and resource of the lab's demo.
const (
	demoGroup    = "webshop"
	demoResource = "db"
	demoDatabase = "webshop"
	vipResource  = "vip"
	nameResource = "name"
	ordersCheck  = "recent-orders"
	nameCheck    = "name-answers"
	// unpassableCheck asks a port nobody listens on (Options.Unpassable).
	unpassableCheck = "never-passes"
	// DNSName is the name the lab's agents answer with the active site's
	// database address.
	DNSName = "db.webshop.lab."
)

// scaleGroup names the scale lab's data-less group i (from 1), pgGroup
// its PostgreSQL group i (Options.Groups with DB postgres), and scaleName
// the name a scale group's dns resource answers.
func scaleGroup(i int) string       { return fmt.Sprintf("svc-%04d", i) }
func pgGroup(i int) string          { return fmt.Sprintf("pg-%04d", i) }
func scaleName(group string) string { return group + ".scale.lab." }

// scaleYAML writes the scale lab's o.groups groups, all preferring
// brussels, each with a name that every agent answers with the active
// site's address on its site's one DNS listener, shared by all the names;
// with o.scalePostgres each also holds a small PostgreSQL database of its
// own (scaleDB), which the name depends on, as webshop's does.
func scaleYAML(b *strings.Builder, dir, binDir string, locs []location, o groupOptions) {
	for i := 1; i <= o.groups; i++ {
		group, deps := scaleGroup(i), ""
		if o.scalePostgres {
			group, deps = pgGroup(i), fmt.Sprintf("\n        depends_on: [%s]", demoResource)
		}
		fmt.Fprintf(b, "  - name: %s\n    preferred_site: brussels\n    policy: %s\n", group, cmp.Or(o.policy, "automatic"))
		if o.scalePostgres {
			// webshop's targets: asynchronous, a few seconds of writes
			// may be lost with the site.
			b.WriteString("    max_data_loss: 5s\n    rto_target: 30s\n")
			groupSitesYAML(b, locs)
		}
		b.WriteString("    resources:\n")
		if o.scalePostgres {
			scaleDB(i).resourceYAML(b, dir, binDir, locs, false, "", "")
		}
		fmt.Fprintf(b, "      - name: %s\n        type: dns%s\n        sites:\n", nameResource, deps)
		for _, l := range locs {
			if l.role == "site" {
				fmt.Fprintf(b, "          %s: {name: %s, address: %s, ttl: 5s, serve: \"%s\"}\n", l.name, scaleName(group), l.ip, l.addr(dnsPort))
			}
		}
	}
}

// groupSitesYAML writes a database group's sites when the lab has more
// than two: in order of preference, a failover takes the most advanced
// standby, the first of them when they are level.
func groupSitesYAML(b *strings.Builder, locs []location) {
	if sites := siteNames(locs); len(sites) > 2 {
		fmt.Fprintf(b, "    sites: [%s]\n", strings.Join(sites, ", "))
	}
}

// pgDB is one of the lab's PostgreSQL databases, a postgres resource
// named db with a server at each site of its group: webshop's, or a scale
// group's (scaleDB).
type pgDB struct {
	group, database string
	port            int
	// dir is its directory in each site's: data, socket and log.
	dir string
	// small runs it with small settings (smallConf): the scale lab runs
	// dozens of them on one machine.
	small bool
}

// webshopDB is the demo group's database.
var webshopDB = pgDB{group: demoGroup, database: demoDatabase, port: postgresPort, dir: "pg"}

// scalePGPort + i is the port of scale group i's servers (15433 for
// pg-0001, …), on each site's address: above the lab's other ports, below
// Linux's ephemeral ones (32768 and up), so no client's port takes it.
const scalePGPort = 15432

// maxPGGroups bounds a scale lab of PostgreSQL groups: two servers each
// on one machine.
const maxPGGroups = 200

// scaleDB is the database of the scale lab's PostgreSQL group i (from 1).
func scaleDB(i int) pgDB {
	return pgDB{group: pgGroup(i), database: "app", port: scalePGPort + i, dir: pgGroup(i), small: true}
}

// smallConf is added to a scale group's primary's postgresql.conf before
// its standbys are cloned from it, so that both servers of each of
// dozens of groups fit in a small machine: 16 MB of shared buffers
// instead of 128, few connections (the agents and a person), and little
// WAL kept.
const smallConf = `
# Added by siteflip lab up: a small server, one of many (lab up --groups N --db postgres).
shared_buffers = '16MB'
max_connections = 20
wal_keep_size = '32MB'
min_wal_size = '32MB'
max_wal_size = '128MB'
autovacuum_max_workers = 1
max_worker_processes = 2
max_parallel_workers = 0
`

// resourceYAML writes the database's postgres resource: the server at
// each site, on the site's address, and also on listen (the VIP) when set.
func (d pgDB) resourceYAML(b *strings.Builder, dir, binDir string, locs []location, synchronous bool, priority, listen string) {
	fmt.Fprintf(b, `      - name: %s
        type: postgres
        synchronous: %t%s
        sites:
`, demoResource, synchronous, priority)
	for _, l := range locs {
		if !l.postgres {
			continue
		}
		fmt.Fprintf(b, `          %s:
            host: %s
            port: %d
            database: %s
            data_dir: %[5]s/data
            socket_dir: %[5]s/run
            bin_dir: %[6]s
            user: siteflip
            password_file: secrets/postgres.password
            replication_user: replicator
            replication_password_file: secrets/replication.password
`, l.name, l.ip, d.port, d.database, filepath.Join(dir, l.name, d.dir), binDir)
		if listen != "" {
			fmt.Fprintf(b, "            listen_addresses: \"%s,%s\"\n", l.ip, listen)
		}
	}
}

// otherSite is the other site of a two-site lab.
func otherSite(site string) string {
	for _, l := range locations {
		if l.role == "site" && l.name != site {
			return l.name
		}
	}
	return ""
}

func (l location) addr(port int) string { return net.JoinHostPort(l.ip, fmt.Sprint(port)) }

// bubble is the site's address for drill copies: its own address's
// neighbour (127.0.2.1 → 127.0.2.2).
func (l location) bubble() string {
	ip := net.ParseIP(l.ip).To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+1).String()
}

// labIdentities are the lab's people: the CLI uses the admin's
// certificate; the others are there to try the roles out.
var labIdentities = []struct{ name, role string }{
	{"lab-admin", "admin"},
	{"lab-operator", "operator"},
	{"lab-viewer", "viewer"},
	{"lab-nobody", ""}, // a certificate of the CA bound to no role
}

// addresses lists every address the lab listens on, to check before
// starting that none is taken; pgGroups is the number of the scale lab's
// PostgreSQL groups, whose servers have ports of their own.
func addresses(locs []location, pgGroups int) []string {
	var out []string
	for _, l := range locs {
		out = append(out, l.addr(agentPort), l.addr(leasePort), l.addr(etcdClientPort), l.addr(etcdPeerPort))
		if l.postgres {
			out = append(out, l.addr(postgresPort), l.addr(dnsPort), l.addr(mariadbPort))
			for i := 1; i <= pgGroups; i++ {
				out = append(out, l.addr(scaleDB(i).port))
			}
		}
	}
	return out
}

// topologyYAML is the lab's siteflip.yaml for the lab in dir. Paths of
// certificates and secrets are relative to dir, where the file lives; data
// directories are absolute, as the postgres driver wants.
// groupOptions vary the demo group.
type groupOptions struct {
	net *netState // set when the lab has a network: a bgp resource announces the VIP
	// postgres and mariadb say which demo groups the lab has: webshop on
	// PostgreSQL, news on MariaDB.
	postgres, mariadb bool
	synchronous       bool
	flapPeriod        time.Duration
	policy            string
	unpassable        bool // a check that can never pass (Options.Unpassable)
	// stack, when set, adds webshop's web stack (Options.Stack), whose
	// commands run exe.
	stack *stackState
	exe   string
	// groups is the number of the scale lab's groups (Options.Groups),
	// with a PostgreSQL database each when scalePostgres is set.
	groups        int
	scalePostgres bool
	// serveLease, when set, replaces the serve lease (Options.ServeLease).
	serveLease time.Duration
}

func topologyYAML(dir, binDir string, locs []location, o groupOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# siteflip lab topology, written by "siteflip lab up".
# %s on loopback addresses of this machine, with mutual
# TLS from a throwaway certificate authority in pki/.
name: lab
`, placesOf(locs))
	if o.serveLease > 0 {
		fmt.Fprintf(&b, "coordination: {serve_lease: %s}\n", o.serveLease)
	}
	b.WriteString(`tls:
  ca_file: pki/ca.crt
operator:                          # the CLI's credential; --cert/--key for another
  cert_file: pki/lab-admin.crt
  key_file: pki/lab-admin.key
access:                            # certificate names and their roles
`)
	for _, id := range labIdentities {
		if id.role != "" {
			fmt.Fprintf(&b, "  - {identity: %s, role: %s}\n", id.name, id.role)
		}
	}
	b.WriteString("sites:\n")
	for _, l := range locs {
		fmt.Fprintf(&b, `  - name: %s
    role: %s
    location: {latitude: %.4f, longitude: %.4f}
    agent: {address: "%s"}
    etcd:
      peer_url: https://%s
      client_url: https://%s
    tls: {cert_file: pki/%s.crt, key_file: pki/%s.key}
`, l.name, l.role, l.lat, l.lon, l.addr(agentPort), l.addr(etcdPeerPort), l.addr(etcdClientPort), l.name, l.name)
		if l.postgres {
			// Drill copies listen on an address of their own, which no
			// production client uses: next to the site's own on the
			// loopback lab; on the namespaced one, production's own
			// service address inside the site's bubble namespace,
			// which nothing links to (lab pivot SITE enters it).
			if ns, ok := o.net.bubble(l.name); ok {
				fmt.Fprintf(&b, "    bubble: {address: %s, netns: %s}\n", o.net.VIP, ns)
			} else {
				fmt.Fprintf(&b, "    bubble: {address: %s}\n", l.bubble())
			}
		}
	}
	// The disasters the lab plans for, by gravity, as Belgian data
	// centres 41 km apart would (siteflip whatif --level NAME): the
	// major one takes both sites, which check and whatif say.
	b.WriteString(`levels:
  - name: minor
    description: the fibre between the Brussels and Antwerp data centres is cut
    lose_links: [brussels-antwerp]
  - name: medium
    description: a fire at the Brussels data centre
    lose: [brussels]
  - name: major
    description: a regional flood or grid failure, 60 km around Brussels
    at: 50.85,4.35
    radius: 60km
`)
	b.WriteString("groups:\n")
	scaleYAML(&b, dir, binDir, locs, o)
	if o.mariadb {
		b.WriteString(newsYAML(dir, locs, o))
	}
	if !o.postgres {
		return b.String()
	}
	fmt.Fprintf(&b, `  - name: %s
    preferred_site: brussels
    policy: %s
    max_data_loss: 5s
    rto_target: 30s
`, demoGroup, cmp.Or(o.policy, "automatic"))
	// webshop needs the company directory wherever it runs; the lab runs
	// one at brussels only (lab ldap), so antwerp cannot reach its own.
	fmt.Fprintf(&b, "    requires:\n      - name: %s\n        type: tcp\n        interval: 1s\n        timeout: 500ms\n        sites:\n", ldapDependency)
	for _, l := range locs {
		if l.postgres {
			fmt.Fprintf(&b, "          %s: {address: \"%s\", at: %s}\n", l.name, l.addr(ldapPort), l.name)
		}
	}
	groupSitesYAML(&b, locs)
	if o.flapPeriod > 0 {
		fmt.Fprintf(&b, "    flap_period: %s\n", o.flapPeriod)
	}
	// The stack recovers in priorities, as SRM's recovery plans do: the
	// storage and the database side by side first, then the app and the
	// proxy, then the rest (the name, the checks).
	priority, listen := "", ""
	if o.stack != nil {
		priority = "\n        priority: 1"
	}
	if o.net != nil {
		listen = o.net.VIP
	}
	b.WriteString("    resources:\n")
	webshopDB.resourceYAML(&b, dir, binDir, locs, o.synchronous, priority, listen)
	if o.stack != nil {
		stackYAML(&b, dir, o.exe, locs, o.stack)
	}
	// Every agent answers the database's name with the active site's
	// address (dig @SITE -p 5353 db.webshop.lab).
	fmt.Fprintf(&b, `      - name: %s
        type: dns
        depends_on: [%s]
        sites:
`, nameResource, demoResource)
	for _, l := range locs {
		if l.postgres {
			fmt.Fprintf(&b, "          %s: {name: %s, address: %s, ttl: 5s, serve: \"%s\"}\n", l.name, DNSName, l.ip, l.addr(dnsPort))
		}
	}
	// Checks, run at the end of every failover, switchover and failback
	// against production, and in drills against the copies: recent
	// orders in the database, and the name answered with the database's
	// address.
	fmt.Fprintf(&b, `      - name: %s
        type: check
        depends_on: [%s]
        sites:
`, ordersCheck, demoResource)
	for _, l := range locs {
		if l.postgres {
			fmt.Fprintf(&b, `          %s:
            sql: {resource: %s, database: %s, user: siteflip, password_file: secrets/postgres.password,
                  query: "SELECT max(placed_at) FROM orders", newer_than: 2m}
`, l.name, demoResource, demoDatabase)
		}
	}
	fmt.Fprintf(&b, `      - name: %s
        type: check
        depends_on: [%s]
        sites:
`, nameCheck, nameResource)
	for _, l := range locs {
		if l.postgres {
			fmt.Fprintf(&b, "          %s:\n            dns: {server: \"{%s}\", name: %s, address: \"{%s.host}\"}\n", l.name, nameResource, DNSName, demoResource)
		}
	}
	if o.unpassable {
		fmt.Fprintf(&b, "      - name: %s\n        type: check\n        sites:\n", unpassableCheck)
		for _, l := range locs {
			if l.postgres {
				fmt.Fprintf(&b, "          %s: {timeout: 1s, tcp: {address: \"127.0.0.1:9\"}}\n", l.name)
			}
		}
	}
	if o.net != nil {
		fmt.Fprintf(&b, `      - name: %s
        type: bgp
        depends_on: [%s]
        sites:
`, vipResource, demoResource)
		for _, l := range locs {
			if l.postgres {
				fmt.Fprintf(&b, "          %s: {asn: %d, neighbors: [{address: %s, asn: %d}], prefixes: [%s/32], next_hop: %s, hold_time: 3s}\n",
					l.name, siteASN(l.name), o.net.Addrs["router"], routerASN, o.net.VIP, l.ip)
			}
		}
	}
	return b.String()
}

// siteNames are the names of the sites of locs, witnesses left out, in
// order.
func siteNames(locs []location) []string {
	var out []string
	for _, l := range locs {
		if l.role == "site" {
			out = append(out, l.name)
		}
	}
	return out
}

// placesOf says what the lab's locations are, for its topology's header.
func placesOf(locs []location) string {
	if len(siteNames(locs)) == 3 {
		return "Three sites (no witness: they outvote a lost one)"
	}
	return "Two sites and a witness"
}
