package driver

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/dns"
	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

const dnsTopology = `
name: t
sites:
  - {name: brussels, agent: {address: "127.0.0.1:17401"}, etcd: {peer_url: "http://127.0.0.1:17501", client_url: "http://127.0.0.1:17601"}}
  - {name: antwerp, agent: {address: "127.0.0.1:17411"}, etcd: {peer_url: "http://127.0.0.1:17502", client_url: "http://127.0.0.1:17602"}}
  - {name: frankfurt, role: witness, agent: {address: "127.0.0.1:17421"}, etcd: {peer_url: "http://127.0.0.1:17503", client_url: "http://127.0.0.1:17603"}}
groups:
  - name: webshop
    preferred_site: brussels
    rto_target: 30s
    resources:
      - name: db
        type: postgres
        sites:
          brussels: {host: 127.0.0.1, port: 15433, data_dir: /srv/pg/brussels}
          antwerp: {host: 127.0.0.1, port: 15434, data_dir: /srv/pg/antwerp}
      - name: name
        type: dns
        depends_on: [db]
        sites:
          brussels: {name: db.shop.example., address: 10.1.0.20, ttl: TTL, serve: "127.0.0.1:PORT1"}
          antwerp: {name: db.shop.example., address: 10.2.0.20, ttl: TTL, serve: "127.0.0.1:PORT2"}
`

// topologyWith fills in the TTL and two free ports.
func topologyWith(t *testing.T, ttl string) string {
	t.Helper()
	r := strings.NewReplacer("TTL", ttl, "PORT1", port(t), "PORT2", port(t))
	return r.Replace(dnsTopology)
}

// port is a free port for the topology's text.
func port(t *testing.T) string { return strconv.Itoa(testbed.FreePort(t)) }

func TestDNSResource(t *testing.T) {
	topo, probs := config.Parse("t.yaml", []byte(topologyWith(t, "5s")), Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	var logs testbed.Buffer
	log, err := logging.New(&logs, logging.FormatJSON, "info")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRuntime(topo, "antwerp", log.With("site", "antwerp"))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	n, ok := rt.Get("webshop/name")
	if !ok || !IsTraffic("dns") || IsTraffic("postgres") {
		t.Fatalf("runtime holds %v; dns network %v", rt.Keys(), IsTraffic("dns"))
	}
	g, _ := topo.Group("webshop")
	addr := g.Resources[1].Settings["antwerp"].(*dns.Settings).Serve
	ask := func() string {
		m := new(mdns.Msg)
		m.SetQuestion("db.shop.example.", mdns.TypeA)
		in, err := mdns.Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Answer) != 1 {
			return mdns.RcodeToString[in.Rcode]
		}
		return in.Answer[0].(*mdns.A).A.String()
	}
	ctx := context.Background()
	// The agent at antwerp answers for the active site, whichever it is.
	n.Follow(ctx, "brussels")
	if got := ask(); got != "10.1.0.20" {
		t.Errorf("active brussels: answered %s", got)
	}
	if v := n.Observe(ctx); v.Role != status.RoleStandby || !v.Up || v.Target != "db.shop.example. → 10.1.0.20" {
		t.Errorf("antwerp while brussels is active: %+v", v)
	}
	if _, err := NewActorFor(t, rt, topo, "antwerp").Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ask(); got != "10.2.0.20" {
		t.Errorf("after promote at antwerp: answered %s", got)
	}
	if v := n.Observe(ctx); v.Role != status.RolePrimary || v.Target != "db.shop.example. → 10.2.0.20" {
		t.Errorf("antwerp after promote: %+v", v)
	}

	// The agent's log says each change of the answer, as component dns.
	var answers []string
	for _, r := range testbed.LogRecords(t, logs.String()) {
		if r["site"] != "antwerp" || r["component"] != "dns" {
			t.Errorf("line %v: want site antwerp, component dns", r)
		}
		if r["msg"] == "dns answer changed" {
			if r["listen"] != addr {
				t.Errorf("line %v: want listen %s", r, addr)
			}
			answers = append(answers, fmt.Sprint(r["addrs"]))
		}
	}
	if want := []string{"[10.1.0.20]", "[10.2.0.20]"}; !slices.Equal(answers, want) {
		t.Errorf("answers logged %v, want %v:\n%s", answers, want, logs.String())
	}
}

// The old site's agent answers for the new one from its rejoin step on,
// not only once the run has ended: until then both sites would claim the
// name.
func TestDNSRejoinFollowsTheNewSite(t *testing.T) {
	topo, probs := config.Parse("t.yaml", []byte(topologyWith(t, "5s")), Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	rt, err := NewRuntime(topo, "brussels", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	n, _ := rt.Get("webshop/name")
	ctx := t.Context()
	n.Follow(ctx, "brussels")
	if v := n.Observe(ctx); v.Role != status.RolePrimary {
		t.Fatalf("brussels while active: %+v", v)
	}
	a := NewActorFor(t, rt, topo, "brussels")
	if _, err := a.Fence(ctx); err != nil {
		t.Fatal(err)
	}
	if v := n.Observe(ctx); v.Role != status.RolePrimary {
		t.Errorf("brussels fenced: %+v; the name moves when the new site is promoted", v)
	}
	if _, err := a.Rejoin(ctx, "antwerp"); err != nil {
		t.Fatal(err)
	}
	if v := n.Observe(ctx); v.Role != status.RoleStandby || v.Target != "db.shop.example. → 10.2.0.20" {
		t.Errorf("brussels rejoined to antwerp: %+v", v)
	}
}

func NewActorFor(t *testing.T, rt *Runtime, topo *config.Topology, site string) resource.Actor {
	t.Helper()
	g, _ := topo.Group("webshop")
	a, err := NewActor(rt, g, &g.Resources[1], site)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDNSTTLWarning(t *testing.T) {
	_, probs := config.Parse("t.yaml", []byte(topologyWith(t, "1m")), Types())
	var warned bool
	for _, p := range probs {
		if p.Warning && strings.Contains(p.Field, "resources[1].sites") && strings.Contains(p.Field, "ttl") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning for a 1m TTL with a 30s RTO target: %v", probs)
	}
}
