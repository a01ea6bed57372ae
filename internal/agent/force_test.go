package agent

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// forceTopology is two sites and a witness with one group of one
// PostgreSQL resource; nothing of it runs.
func forceTopology(t *testing.T) *config.Topology {
	t.Helper()
	path := filepath.Join(t.TempDir(), "siteflip.yaml")
	yaml := `name: forcetest
sites:
  - name: brussels
    agent: {address: "127.0.0.1:1", lease_address: "127.0.0.1:11"}
    etcd: {peer_url: "http://127.0.0.1:12381", client_url: "http://127.0.0.1:12391"}
  - name: antwerp
    agent: {address: "127.0.0.1:2", lease_address: "127.0.0.1:12"}
    etcd: {peer_url: "http://127.0.0.1:12382", client_url: "http://127.0.0.1:12392"}
  - name: frankfurt
    role: witness
    agent: {address: "127.0.0.1:3", lease_address: "127.0.0.1:13"}
    etcd: {peer_url: "http://127.0.0.1:12383", client_url: "http://127.0.0.1:12393"}
groups:
  - name: webshop
    preferred_site: brussels
    max_data_loss: 5s
    resources:
      - name: db
        type: postgres
        sites:
          brussels: {host: 127.0.0.1, port: 15433, data_dir: /srv/pg/brussels}
          antwerp: {host: 127.0.0.1, port: 15434, data_dir: /srv/pg/antwerp}
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := config.Load(path, driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// forceAgent is the agent of site with no etcd at all: whatever touches
// the control plane would panic, which proves a refusal changed nothing.
func forceAgent(t *testing.T, topo *config.Topology, site string) *agent {
	s, ok := topo.Site(site)
	if !ok {
		t.Fatalf("no site %s", site)
	}
	// As if TLS were on: the locations' certificates, and an admin.
	r, err := access.NewResolver(true, map[string]string{"brussels": "brussels", "antwerp": "antwerp", "frankfurt": "frankfurt"},
		[]config.Access{{Identity: "operator", Role: "admin"}, {Identity: "otto", Role: "operator"}})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := &base{topo: topo, site: s, log: quiet, metrics: newMetrics()}
	return wire(b, parts{resolver: r, audit: audit.NewWriter(&auditSink{}, quiet, time.Now)})
}

// withCert makes r look as if it came over mutual TLS with a certificate
// named cn.
func withCert(r *http.Request, cn string) *http.Request {
	if cn != "" {
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: cn}}}}
	}
	return r
}

// Bad or unauthorised force requests, and forces the agent cannot do, are
// refused before anything is touched, with what, where and what to do.
func TestForceRefusals(t *testing.T) {
	topo := forceTopology(t)
	tests := []struct {
		name, site, cn, body string
		code                 int
		want                 []string
	}{
		{"a location's certificate", "brussels", "antwerp", `{"group":"webshop"}`, http.StatusForbidden, []string{"acts only as a location", `"antwerp"`, "admin"}},
		{"an operator, not an admin", "brussels", "otto", `{"group":"webshop"}`, http.StatusForbidden, []string{`"otto" (operator)`, "needs the admin role"}},
		{"a certificate bound to no role", "brussels", "mallory", `{"group":"webshop"}`, http.StatusForbidden, []string{`"mallory"`, "admin"}},
		{"broken request", "brussels", "operator", `{"group":`, http.StatusBadRequest, []string{"decode force request"}},
		{"unknown field", "brussels", "operator", `{"group":"webshop","sudo":true}`, http.StatusBadRequest, []string{"decode force request", "unknown field"}},
		{"unknown group", "brussels", "operator", `{"group":"nosuch"}`, http.StatusNotFound, []string{`unknown group "nosuch"`, "webshop", "nothing was changed"}},
		{"the witness", "frankfurt", "operator", `{"group":"webshop"}`, http.StatusConflict, []string{"frankfurt is not a site of group webshop", "brussels, antwerp", "--to", "nothing was changed"}},
		{"external etcd", "brussels", "operator", `{"group":"webshop"}`, http.StatusConflict, []string{"existing etcd cluster", "--force-new-cluster", "siteflip failover webshop --to brussels", "nothing was changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := forceAgent(t, topo, tt.site)
			mux, _, err := a.api.routes()
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, withCert(httptest.NewRequest(http.MethodPost, "/v1/force", strings.NewReader(tt.body)), tt.cn))
			if w.Code != tt.code {
				t.Errorf("status %d, want %d: %s", w.Code, tt.code, w.Body)
			}
			var answer struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
				t.Fatalf("answer %s: %v", w.Body, err)
			}
			for _, s := range tt.want {
				if !strings.Contains(answer.Error, s) {
					t.Errorf("answer %q lacks %q", answer.Error, s)
				}
			}
			if a.force.forced() {
				t.Error("a refused force left the location forced")
			}
		})
	}
}

// How a force recovers its group at brussels, decided from what brussels
// observes and what its etcd member last knew, before anything changes.
func TestForceRecovery(t *testing.T) {
	topo := forceTopology(t)
	g, _ := topo.Group("webshop")
	now := time.Now().UTC()
	rec := func(active string) status.Record {
		return status.Record{Group: "webshop", ActiveSite: active, Epoch: 4, UpdatedAt: now.Add(-time.Hour), Revision: 77}
	}
	lag := func(seconds float64, at time.Time) map[string]map[string]status.Lag {
		return map[string]map[string]status.Lag{"db": {"brussels": {Seconds: seconds, Epoch: 4, MeasuredAt: at, SeenAt: at, Streaming: true}}}
	}
	view := func(up bool, role string) map[string]status.ResourceView {
		return map[string]status.ResourceView{"webshop/db": {Up: up, Role: role}}
	}
	tests := []struct {
		name      string
		lg        coord.LocalGroup
		resources map[string]status.ResourceView
		accept    bool
		wantErr   []string
		wantNote  string
		wantSteps []string
		wantEpoch int64 // of a new record, 0 for none
	}{
		{name: "never adopted", lg: coord.LocalGroup{}, resources: view(true, status.RoleStandby),
			wantErr: []string{"no record", "nothing was changed"}},
		{name: "a run in progress", lg: coord.LocalGroup{Adopted: true, Record: rec("antwerp"), Running: "r9"}, resources: view(true, status.RoleStandby),
			wantNote: "run r9 of webshop is in progress"},
		{name: "active here and serving", lg: coord.LocalGroup{Adopted: true, Record: rec("brussels")}, resources: view(true, status.RolePrimary),
			wantNote: "nothing to recover"},
		{name: "active here and self-fenced", lg: coord.LocalGroup{Adopted: true, Record: rec("brussels")}, resources: view(false, status.RoleDown),
			wantSteps: []string{"unfence:db@brussels", "promote:db@brussels"}, wantEpoch: 5},
		{name: "active elsewhere, standby caught up", lg: coord.LocalGroup{Adopted: true, Record: rec("antwerp"), Lags: lag(0.01, now)}, resources: view(true, status.RoleStandby),
			wantSteps: []string{"activate@brussels", "promote:db@brussels"}},
		{name: "active elsewhere, standby too far behind", lg: coord.LocalGroup{Adopted: true, Record: rec("antwerp"), Lags: lag(9, now)}, resources: view(true, status.RoleStandby),
			wantErr: []string{"more than max_data_loss 5s", "--accept-data-loss", "add --force", "nothing was changed"}},
		{name: "active elsewhere, too far behind, accepted", lg: coord.LocalGroup{Adopted: true, Record: rec("antwerp"), Lags: lag(9, now)}, resources: view(true, status.RoleStandby), accept: true,
			wantSteps: []string{"activate@brussels", "promote:db@brussels"}},
		{name: "active elsewhere, lag never measured", lg: coord.LocalGroup{Adopted: true, Record: rec("antwerp")}, resources: view(true, status.RoleStandby),
			wantErr: []string{"never measured", "--accept-data-loss"}},
		{name: "active elsewhere, no standby here", lg: coord.LocalGroup{Adopted: true, Record: rec("antwerp"), Lags: lag(0.01, now)}, resources: view(false, status.RoleDown),
			wantErr: []string{"not an up standby"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := forceAgent(t, topo, "brussels")
			a.local.resources = tt.resources
			rc, err := a.force.recoveryOf(g, tt.lg, "operator", apiForce(tt.accept))
			if tt.wantErr != nil {
				var fe *forceError
				if !errors.As(err, &fe) || fe.code != http.StatusConflict {
					t.Fatalf("err %v, want a refusal (409)", err)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("refusal %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNote != "" && !strings.Contains(rc.note, tt.wantNote) {
				t.Errorf("note %q, want %q in it", rc.note, tt.wantNote)
			}
			var steps []string
			if rc.run != nil {
				for _, s := range rc.run.Plan.Steps {
					steps = append(steps, s.ID)
				}
				if rc.run.By != "operator (--force)" || rc.run.Plan.To != "brussels" || rc.run.Request.AcceptDataLoss != tt.accept {
					t.Errorf("run by %q to %s, accept %v", rc.run.By, rc.run.Plan.To, rc.run.Request.AcceptDataLoss)
				}
			}
			if diff := cmp.Diff(tt.wantSteps, steps); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantEpoch == 0 && rc.record != nil:
				t.Errorf("a new record %+v, want none", rc.record)
			case tt.wantEpoch != 0 && (rc.record == nil || rc.record.Epoch != tt.wantEpoch || rc.record.Reason != "forced by operator after quorum loss" || rc.revision != 77):
				t.Errorf("record %+v (replacing revision %d), want epoch %d, reason forced by operator after quorum loss, revision 77", rc.record, rc.revision, tt.wantEpoch)
			case tt.wantEpoch != 0 && rc.run.Plan.Epoch != tt.wantEpoch:
				t.Errorf("run planned at epoch %d, want %d", rc.run.Plan.Epoch, tt.wantEpoch)
			}
			if rc.run != nil && rc.run.Plan.Action != plan.Failover {
				t.Errorf("action %s", rc.run.Plan.Action)
			}
		})
	}
}

func apiForce(accept bool) api.ForceRequest {
	return api.ForceRequest{Group: "webshop", AcceptDataLoss: accept}
}
