package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/driver/dns"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// A group whose only resource is a name holds no data: it stayed
// initializing for ever, and failover said "group not adopted yet". It
// is adopted at its preferred site, protected, switched over, failed over
// by itself when its active site is lost, and reprotected, as any group.
func TestDatalessGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three agents with embedded etcd members; skipped with -short")
	}
	dir := t.TempDir()
	clusterIn(t, dir)
	serve := map[string]string{}
	addr := map[string]string{"brussels": "192.0.2.1", "antwerp": "192.0.2.2"}
	groups := "groups:\n  - name: names\n    preferred_site: brussels\n    policy: automatic\n    flap_period: 1s\n    resources:\n      - name: www\n        type: dns\n        sites:\n"
	for _, site := range []string{"brussels", "antwerp"} {
		serve[site] = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
		groups += fmt.Sprintf("          %s: {name: www.example.test., address: %s, ttl: 1s, serve: %q}\n", site, addr[site], serve[site])
	}
	path := filepath.Join(dir, "siteflip.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, groups...), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := config.Load(path, driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	agents := startAll(t, topo, data)
	defer stopAll(t, agents)
	c := client(t, topo)
	protectedAt := func(site string) func(status.Status) bool {
		return func(st status.Status) bool {
			return allUp(st) && st.Groups[0].ActiveSite == site && st.Groups[0].State == status.StateProtected
		}
	}
	answers := func(site, want string) {
		t.Helper()
		testbed.WaitFor(t, 10*time.Second, "the agent of "+site+" to answer with "+want, func() bool {
			got, _, err := dns.Lookup(t.Context(), serve[site], "www.example.test.")
			return err == nil && len(got) == 1 && got[0] == netip.MustParseAddr(want)
		})
	}
	waitFor(t, c, 60*time.Second, "names adopted at its preferred site, protected", protectedAt("brussels"))
	answers("antwerp", addr["brussels"])

	r := startAndWait(t, c, api.RunRequest{Group: "names", Action: plan.Switchover, To: "antwerp"})
	if r.State != plan.RunSucceeded {
		t.Fatalf("switchover: %s: %s", r.State, r.Error)
	}
	waitFor(t, c, 30*time.Second, "names protected at antwerp", protectedAt("antwerp"))
	answers("brussels", addr["antwerp"])

	agents["antwerp"].stop(t)
	delete(agents, "antwerp")
	waitFor(t, c, 60*time.Second, "names failed over to brussels by itself", func(st status.Status) bool {
		return st.Groups[0].ActiveSite == "brussels" && st.Groups[0].Run == ""
	})
	answers("brussels", addr["brussels"])
	runs, err := c.Runs(t.Context(), "names")
	if err != nil || len(runs) == 0 || runs[len(runs)-1].Plan.Action != plan.Failover || runs[len(runs)-1].State != plan.RunSucceeded {
		t.Fatalf("the newest run of names is not a succeeded failover: %v %+v", err, runs)
	}

	agents["antwerp"] = start(t, topo, "antwerp", filepath.Join(data, "antwerp"))
	r = startAndWait(t, c, api.RunRequest{Group: "names", Action: plan.Reprotect})
	if r.State != plan.RunSucceeded {
		t.Fatalf("reprotect: %s: %s", r.State, r.Error)
	}
	waitFor(t, c, 60*time.Second, "names protected at brussels again", protectedAt("brussels"))
}

// startAndWait starts a run and waits for its end.
func startAndWait(t *testing.T, c *api.Client, req api.RunRequest) plan.Run {
	t.Helper()
	r, err := c.StartRun(t.Context(), req)
	if err != nil {
		t.Fatalf("start %s of %s: %v", req.Action, req.Group, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got, err := c.WaitRun(ctx, r.ID, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("%v; as last read: %+v", err, got)
	}
	return got
}
