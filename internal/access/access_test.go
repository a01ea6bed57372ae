package access

import (
	"errors"
	"strings"
	"testing"

	"github.com/siteflip/siteflip/internal/config"
)

func resolver(t *testing.T) *Resolver {
	t.Helper()
	r, err := NewResolver(true,
		map[string]string{"brussels": "brussels", "antwerp": "antwerp", "frankfurt": "frankfurt-witness"},
		[]config.Access{
			{Identity: "vera", Role: "viewer"},
			{Identity: "otto", Role: "operator"},
			{Identity: "ada", Role: "admin"},
		})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolve(t *testing.T) {
	r := resolver(t)
	tests := []struct {
		cn   string
		want Principal
	}{
		{"brussels", Principal{Name: "brussels", Site: "brussels", Via: ViaCertificate}},
		{"frankfurt-witness", Principal{Name: "frankfurt-witness", Site: "frankfurt", Via: ViaCertificate}},
		{"ada", Principal{Name: "ada", Role: Admin, Via: ViaCertificate}},
		{"otto", Principal{Name: "otto", Role: Operator, Via: ViaCertificate}},
		{"vera", Principal{Name: "vera", Role: Viewer, Via: ViaCertificate}},
		{"prometheus", Principal{Name: "prometheus", Role: None, Via: ViaCertificate}},
		{"", Principal{}},
	}
	for _, tt := range tests {
		if got := r.Resolve(tt.cn); got != tt.want {
			t.Errorf("Resolve(%q) = %+v, want %+v", tt.cn, got, tt.want)
		}
	}
	plain, err := NewResolver(false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.Resolve("anything"); !got.Anonymous {
		t.Errorf("without TLS every caller is anonymous, got %+v", got)
	}
}

// A token's role is capped by the one access: binds its name to now;
// locations cannot use tokens.
func TestResolveToken(t *testing.T) {
	r := resolver(t)
	tests := []struct {
		cn    string
		role  Role
		want  Principal
		error string
	}{
		{cn: "ada", role: Operator, want: Principal{Name: "ada", Role: Operator, Via: ViaToken}},
		{cn: "ada", role: Admin, want: Principal{Name: "ada", Role: Admin, Via: ViaToken}},
		{cn: "vera", role: Admin, want: Principal{Name: "vera", Role: Viewer, Via: ViaToken}},
		{cn: "otto", role: Viewer, want: Principal{Name: "otto", Role: Viewer, Via: ViaToken}},
		// Removed from access: since the token was made.
		{cn: "prometheus", role: Admin, want: Principal{Name: "prometheus", Role: None, Via: ViaToken}},
		{cn: "brussels", role: Viewer, error: "certificate of location brussels"},
		{cn: "frankfurt-witness", role: Viewer, error: "certificate of location frankfurt"},
	}
	for _, tt := range tests {
		got, err := r.ResolveToken(tt.cn, tt.role)
		if tt.error != "" {
			if !errors.Is(err, ErrLocationToken) || !strings.Contains(err.Error(), tt.error) {
				t.Errorf("ResolveToken(%q, %s): %v, want %q", tt.cn, tt.role, err, tt.error)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveToken(%q, %s) = %+v, %v; want %+v", tt.cn, tt.role, got, err, tt.want)
		}
	}
	plain, err := NewResolver(false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := plain.ResolveToken("ada", Admin); err != nil || !got.Anonymous {
		t.Errorf("without TLS a token changes nothing: %+v, %v", got, err)
	}
}

func TestNewResolverRefuses(t *testing.T) {
	_, err := NewResolver(true, map[string]string{"brussels": "brussels"}, []config.Access{{Identity: "brussels", Role: "admin"}})
	if !errors.Is(err, ErrIdentityClash) || !strings.Contains(err.Error(), "location brussels") {
		t.Errorf("a location's certificate bound to a role: %v", err)
	}
	if _, err := NewResolver(true, nil, []config.Access{{Identity: "x", Role: "root"}}); err == nil || !strings.Contains(err.Error(), `unknown role "root"`) {
		t.Errorf("unknown role: %v", err)
	}
}

// TestEveryPrincipalEveryEndpoint is the authorization table, written out:
// for every kind of caller, which endpoints admit it.
func TestEveryPrincipalEveryEndpoint(t *testing.T) {
	r := resolver(t)
	anon := Principal{Anonymous: true}
	callers := map[string]Principal{
		"site":      r.Resolve("brussels"),
		"witness":   r.Resolve("frankfurt-witness"),
		"admin":     r.Resolve("ada"),
		"operator":  r.Resolve("otto"),
		"viewer":    r.Resolve("vera"),
		"no role":   r.Resolve("prometheus"),
		"anonymous": anon,
	}
	// Which callers each endpoint admits; every other caller is refused.
	want := map[string][]string{
		"GET /healthz":                    {"site", "witness", "admin", "operator", "viewer", "no role", "anonymous"},
		"GET /v1/status":                  {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"GET /metrics":                    {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"GET /v1/runs":                    {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"GET /v1/runs/{id}":               {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"GET /v1/audit":                   {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"POST /v1/runs":                   {"admin", "operator"},
		"POST /v1/runs/{id}/verdict":      {"admin", "operator"},
		"POST /v1/force":                  {"admin"},
		"POST /v1/steps":                  {"site", "witness"},
		"GET /v1/copy/{group}/{resource}": {"site", "witness"},
		"POST /v1/drills/{group}/cleanup": {"operator", "admin"},
		"POST /v1/groups/{group}/pause":   {"operator", "admin"},
		"POST /v1/groups/{group}/resume":  {"operator", "admin"},
		"POST /v1/scheduled":              {"operator", "admin"},
		"DELETE /v1/scheduled/{group}":    {"operator", "admin"},
		"POST /v1/lease":                  {"site", "witness", "anonymous"},
		"GET /v1/members":                 {"site", "witness"},
		"POST /v1/members":                {"site", "witness", "anonymous"},
		"POST /v1/members/promote":        {"site", "witness", "anonymous"},
		"GET /{$}":                        {"site", "witness", "admin", "operator", "viewer", "no role", "anonymous"},
		"GET /ui/{path...}":               {"site", "witness", "admin", "operator", "viewer", "no role", "anonymous"},
		"GET /v1/ui/config":               {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"GET /v1/events":                  {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"GET /v1/lag":                     {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"GET /v1/runs/{id}/report":        {"site", "witness", "admin", "operator", "viewer", "anonymous"},
		"GET /v1/whatif":                  {"site", "witness", "admin", "operator", "viewer", "anonymous"},
	}
	if len(want) != len(Endpoints) {
		t.Errorf("the test lists %d endpoints, the table %d: add the new ones here", len(want), len(Endpoints))
	}
	for _, e := range Endpoints {
		admitted, ok := want[e.Pattern]
		if !ok {
			t.Errorf("endpoint %s is not in this test", e.Pattern)
			continue
		}
		for name, p := range callers {
			wantOK := false
			for _, a := range admitted {
				wantOK = wantOK || a == name
			}
			got, why := Allow(e.Rule, p)
			if got != wantOK {
				t.Errorf("%s by %s: allowed %v, want %v (%s)", e.Pattern, name, got, wantOK, why)
			}
			if !got && why == "" {
				t.Errorf("%s by %s: refused without a reason", e.Pattern, name)
			}
		}
	}
}

func TestRunRole(t *testing.T) {
	r := resolver(t)
	tests := []struct {
		action string
		accept bool
		caller string
		ok     bool
	}{
		{"switchover", false, "otto", true},
		{"failback", false, "otto", true},
		{"reprotect", false, "otto", true},
		{"failover", false, "otto", true},
		{"failover", true, "otto", false},
		{"failover", true, "ada", true},
		{"switchover", false, "vera", false},
		{"switchover", false, "brussels", false},
	}
	for _, tt := range tests {
		ok, why := AllowRole(RunRole(tt.action, tt.accept), r.Resolve(tt.caller))
		if ok != tt.ok {
			t.Errorf("%s (accept data loss %v) by %s: allowed %v, want %v (%s)", tt.action, tt.accept, tt.caller, ok, tt.ok, why)
		}
	}
}
