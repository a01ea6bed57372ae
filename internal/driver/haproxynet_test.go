package driver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/haproxy"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// TestHAProxyResource: a switchover's steps on a real HAProxy in front of
// one HTTP server per site. After antwerp's promote the next request is
// served by antwerp, and a reload keeps it.
func TestHAProxyResource(t *testing.T) {
	bin, err := haproxy.Binary()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir, err := os.MkdirTemp("", "siteflip-lb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	backend := func(site string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, site) }))
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	front := "127.0.0.1:" + port(t)
	sock, state := filepath.Join(dir, "admin.sock"), filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global
    stats socket %s level admin
    server-state-file %s
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    load-server-state-from-file global
frontend fe
    bind %s
    default_backend webshop
backend webshop
    server brussels %s
    server antwerp %s disabled
`, sock, state, front, backend("brussels"), backend("antwerp"))), 0o644); err != nil {
		t.Fatal(err)
	}
	// start starts HAProxy, as the lab does; with old > 0, a reload.
	start := func(old int) *haproxy.Proc {
		p := &haproxy.Proc{Bin: bin, Config: cfg, Socket: sock, Log: filepath.Join(dir, "haproxy.log")}
		if err := p.Start(t.Context(), old); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		return p
	}
	proc := start(0)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() string {
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := client.Get("http://" + front + "/")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return string(body)
				}
			}
			if time.Now().After(deadline) {
				return fmt.Sprintf("no answer (%v)", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := get(); got != "brussels" {
		t.Fatalf("before: served by %s", got)
	}
	yaml := strings.NewReplacer("SOCK", sock, "STATE", state).Replace(`
      - name: lb
        type: haproxy
        depends_on: [db]
        sites:
          brussels: {runtime_api: SOCK, backend: webshop, server: brussels, state_file: STATE}
          antwerp: {runtime_api: SOCK, backend: webshop, server: antwerp, state_file: STATE}
`)
	text := strings.Replace(dnsTopology, "      - name: name\n", yaml+"      - name: name\n", 1)
	text = strings.NewReplacer("TTL", "5s", "PORT1", port(t), "PORT2", port(t)).Replace(text)
	topo, probs := config.Parse("t.yaml", []byte(text), Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	g, _ := topo.Group("webshop")
	lb := &g.Resources[1]
	ctx := context.Background()
	actor := func(site string) (resource.Actor, resource.Network) {
		rt, err := NewRuntime(topo, site, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rt.Close)
		a, err := NewActor(rt, g, lb, site)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := rt.Get("webshop/lb")
		return a, n
	}
	atBrussels, nb := actor("brussels")
	atAntwerp, na := actor("antwerp")
	if v := nb.Observe(ctx); v.Role != status.RolePrimary {
		t.Errorf("brussels before: %+v", v)
	}
	// A switchover's steps: fence brussels, promote antwerp, rejoin brussels.
	if _, err := atBrussels.Fence(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "brussels" {
		t.Errorf("after the fence step (traffic moves with the promote): served by %s", got)
	}
	if _, err := atAntwerp.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "antwerp" {
		t.Errorf("the next request after antwerp's promote: served by %s", got)
	}
	if _, err := atBrussels.Rejoin(ctx, "antwerp"); err != nil {
		t.Fatal(err)
	}
	if va, vb := na.Observe(ctx), nb.Observe(ctx); va.Role != status.RolePrimary || vb.Role != status.RoleStandby {
		t.Errorf("after: antwerp %s, brussels %s", va.Role, vb.Role)
	}
	// A reload keeps it: the state file holds it.
	start(proc.PID())
	<-proc.Exited()
	if got := get(); got != "antwerp" {
		t.Errorf("after a reload: served by %s", got)
	}
}
