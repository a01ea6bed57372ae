package driver

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
)

const targetsTopology = `
name: t
sites:
  - {name: brussels, agent: {address: "127.0.0.1:17401"}, etcd: {peer_url: "http://127.0.0.1:17501", client_url: "http://127.0.0.1:17601"}}
  - {name: antwerp, agent: {address: "127.0.0.1:17411"}, etcd: {peer_url: "http://127.0.0.1:17502", client_url: "http://127.0.0.1:17602"}}
  - {name: frankfurt, role: witness, agent: {address: "127.0.0.1:17421"}, etcd: {peer_url: "http://127.0.0.1:17503", client_url: "http://127.0.0.1:17603"}}
groups:
  - name: webshop
    preferred_site: brussels
    resources:
      - name: db
        type: postgres
        sites:
          brussels: {host: 10.1.0.20, port: 5433, data_dir: /srv/pg/brussels}
          antwerp: {host: /var/run/postgresql, data_dir: /srv/pg/antwerp}
      - name: name
        type: dns
        depends_on: [db]
        sites:
          brussels: {name: db.shop.example., address: 10.1.0.20, serve: "10.1.0.10:5353"}
          antwerp: {name: db.shop.example., address: 10.2.0.20, serve: ":53"}
      - name: web
        type: haproxy
        sites:
          brussels: {runtime_api: /run/haproxy.sock, backend: shop, state_file: /var/lib/haproxy/server-state}
          antwerp: {runtime_api: /run/haproxy.sock, backend: shop, state_file: /var/lib/haproxy/server-state}
      - name: recent-orders
        type: check
        depends_on: [db]
        sites:
          brussels:
            sql: {resource: db, database: webshop, user: siteflip, query: "SELECT count(*) FROM orders", min_rows: 1}
          antwerp:
            dns: {server: "{name}", name: db.shop.example., address: "{db.host}"}
`

// Targets gives the address of every resource that has one at the site:
// the databases' servers and the agents' DNS listeners.
func TestTargets(t *testing.T) {
	topo, probs := config.Parse("t.yaml", []byte(targetsTopology), Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	g, _ := topo.Group("webshop")
	for site, want := range map[string]map[string]string{
		"brussels": {"db": "10.1.0.20:5433", "name": "10.1.0.10:5353"},
		"antwerp":  {}, // a unix socket and a listener on every address
	} {
		if diff := cmp.Diff(want, Targets(nil, g, site)); diff != "" {
			t.Errorf("Targets at %s (-want +got):\n%s", site, diff)
		}
	}
	// The lease's probe still asks databases only.
	if addr, ok := Endpoint(&g.Resources[1], "brussels"); ok {
		t.Errorf("Endpoint of a dns resource: %s; want none", addr)
	}
	if addr, ok := Endpoint(&g.Resources[0], "brussels"); !ok || addr != "10.1.0.20:5433" {
		t.Errorf("Endpoint of the database: %s, %v", addr, ok)
	}

	check := &g.Resources[3]
	if check.Class != config.ClassCheck || check.Data {
		t.Errorf("check resource: class %q, data %v", check.Class, check.Data)
	}
	v, err := NewVerifier(g, check, "brussels")
	if err != nil || v == nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	// At antwerp the check's placeholders have no address.
	v, err = NewVerifier(g, check, "antwerp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := v.Verify(t.Context(), Targets(nil, g, "antwerp"))
	if want := "check recent-orders: dns.server: no address for resource name here: it has none at this site; write the address in full instead of {name}"; err == nil || err.Error() != want {
		t.Errorf("Verify at antwerp: %v, %v\nwant: %s", out, err, want)
	}
	if _, err := NewVerifier(g, &g.Resources[0], "brussels"); err == nil || err.Error() != "group webshop, resource db: postgres resources have no check to run" {
		t.Errorf("NewVerifier of a database: %v", err)
	}
}

// A check naming a resource its group lacks is warned about at load.
func TestCheckLint(t *testing.T) {
	bad := []byte(targetsTopology + `      - name: broken
        type: check
        sites:
          brussels: {tcp: {address: "{cache}"}}
          antwerp: {sql: {resource: name, user: u, query: SELECT 1}}
`)
	_, probs := config.Parse("t.yaml", bad, Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	var got []string
	for _, p := range probs {
		if p.Warning && strings.HasPrefix(p.Field, "groups[0].resources[4]") {
			got = append(got, p.Field+": "+p.Msg)
		}
	}
	want := []string{
		`groups[0].resources[4].sites.brussels.tcp.address: placeholder {cache}: resource "cache" is not in group webshop: name one of its resources`,
		`groups[0].resources[4].sites.antwerp.sql.resource: name is a dns resource: an sql check asks the server of a postgres or mariadb resource`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}
