package haproxy

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

func TestYAMLKeys(t *testing.T) {
	var got []string
	typ := reflect.TypeFor[Settings]()
	for i := 0; i < typ.NumField(); i++ {
		got = append(got, typ.Field(i).Tag.Get("yaml"))
	}
	want := []string{"runtime_api", "backend", "server", "state_file", "state_scope", "timeout"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("yaml keys = %q, want %q", got, want)
	}
}

func TestSetDefaults(t *testing.T) {
	var s Settings
	s.SetDefaults("brussels")
	want := Settings{Server: "brussels", StateScope: "global", Timeout: config.Duration(5 * time.Second)}
	if s != want {
		t.Errorf("SetDefaults on empty settings = %+v, want %+v", s, want)
	}

	set := Settings{RuntimeAPI: "/run/haproxy/admin.sock", Backend: "webshop", Server: "bru-1",
		StateFile: "/var/lib/haproxy/server-state", StateScope: "local", Timeout: config.Duration(time.Second)}
	got := set
	got.SetDefaults("brussels")
	if got != set {
		t.Errorf("SetDefaults changed fields that were set: %+v, want %+v", got, set)
	}
}

func TestPrepare(t *testing.T) {
	tests := []struct {
		name           string
		in             Settings
		api, stateFile string
	}{
		{"relative paths", Settings{RuntimeAPI: "run/admin.sock", StateFile: "state/servers"}, "/etc/siteflip/run/admin.sock", "/etc/siteflip/state/servers"},
		{"absolute paths", Settings{RuntimeAPI: "/run/haproxy/admin.sock", StateFile: "/var/lib/haproxy/server-state"}, "/run/haproxy/admin.sock", "/var/lib/haproxy/server-state"},
		{"tcp address", Settings{RuntimeAPI: "10.0.0.5:9999", StateFile: "/var/lib/haproxy/server-state"}, "10.0.0.5:9999", "/var/lib/haproxy/server-state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.in
			s.Backend = "webshop"
			probs := Type{}.Config().Prepare(&s, "antwerp", "/etc/siteflip")
			if len(probs) != 0 {
				t.Errorf("Prepare: unexpected problems %v", probs)
			}
			if s.RuntimeAPI != tt.api || s.StateFile != tt.stateFile || s.Server != "antwerp" {
				t.Errorf("Prepare gave runtime_api %q, state_file %q, server %q; want %q, %q, antwerp", s.RuntimeAPI, s.StateFile, s.Server, tt.api, tt.stateFile)
			}
		})
	}
	if _, ok := (Type{}).Config().New().(*Settings); !ok {
		t.Error("Type{}.Config().New() does not return a *Settings")
	}
}

func TestCheck(t *testing.T) {
	valid := func() Settings {
		s := Settings{RuntimeAPI: "/run/haproxy/admin.sock", Backend: "webshop", StateFile: "/var/lib/haproxy/server-state"}
		s.SetDefaults("brussels")
		return s
	}
	tests := []struct {
		name   string
		change func(s *Settings)
		field  string // "" for no problem
		msg    string
	}{
		{"valid unix socket", func(s *Settings) {}, "", ""},
		{"valid tcp address", func(s *Settings) { s.RuntimeAPI = "127.0.0.1:9999" }, "", ""},
		{"valid ipv6 address", func(s *Settings) { s.RuntimeAPI = "[::1]:9999" }, "", ""},
		{"valid host name", func(s *Settings) { s.RuntimeAPI = "lb.brussels.example:9999" }, "", ""},
		{"valid local scope", func(s *Settings) { s.StateScope = "local" }, "", ""},
		{"names with - _ . :", func(s *Settings) { s.Backend, s.Server = "web-shop_v2.eu:1", "bru.1" }, "", ""},
		{"no runtime api", func(s *Settings) { s.RuntimeAPI = "" }, "runtime_api", "is required: set it to the unix socket path or host:port of a `stats socket ... level admin` line"},
		{"haproxy prefix", func(s *Settings) { s.RuntimeAPI = "ipv4@127.0.0.1:9999" }, "runtime_api", `carries HAProxy's address prefix: write "127.0.0.1:9999"`},
		{"unix prefix", func(s *Settings) { s.RuntimeAPI = "unix@/run/haproxy/admin.sock" }, "runtime_api", `write "/run/haproxy/admin.sock"`},
		{"abstract socket", func(s *Settings) { s.RuntimeAPI = "abns@haproxy" }, "runtime_api", "abstract socket"},
		{"neither path nor address", func(s *Settings) { s.RuntimeAPI = "admin.sock" }, "runtime_api", "is neither a unix socket path (it has no slash) nor host:port"},
		{"no host", func(s *Settings) { s.RuntimeAPI = ":9999" }, "runtime_api", "has no host: write host:port, e.g. 127.0.0.1:9999"},
		{"bad port", func(s *Settings) { s.RuntimeAPI = "127.0.0.1:99999" }, "runtime_api", `port "99999" is not a TCP port`},
		{"named port", func(s *Settings) { s.RuntimeAPI = "127.0.0.1:haproxy" }, "runtime_api", `port "haproxy" is not a TCP port`},
		{"relative socket", func(s *Settings) { s.RuntimeAPI = "run/admin.sock" }, "runtime_api", "must be absolute"},
		{"long socket path", func(s *Settings) { s.RuntimeAPI = "/" + strings.Repeat("d", 120) + "/admin.sock" }, "runtime_api", "more than the limit of 107"},
		{"space in socket path", func(s *Settings) { s.RuntimeAPI = "/run/ha proxy.sock" }, "runtime_api", "must not contain spaces"},
		{"no backend", func(s *Settings) { s.Backend = "" }, "backend", "is required: set it to the name of the backend"},
		{"bad backend", func(s *Settings) { s.Backend = "web shop" }, "backend", `"web shop" is not an HAProxy name`},
		{"slash in server", func(s *Settings) { s.Server = "webshop/brussels" }, "server", `"webshop/brussels" is not an HAProxy name`},
		{"no server", func(s *Settings) { s.Server = "" }, "server", "is required"},
		{"no state file", func(s *Settings) { s.StateFile = "" }, "state_file", "is required: set it to the `server-state-file` of haproxy.cfg"},
		{"relative state file", func(s *Settings) { s.StateFile = "server-state" }, "state_file", "must be an absolute path"},
		{"state folder", func(s *Settings) { s.StateFile = "/var/lib/haproxy/" }, "state_file", "names a folder"},
		{"bad scope", func(s *Settings) { s.StateScope = "backend" }, "state_scope", `"backend" is not a scope: use global`},
		{"negative timeout", func(s *Settings) { s.Timeout = config.Duration(-time.Second) }, "timeout", "-1s must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.change(&s)
			probs := s.Check()
			if tt.field == "" {
				if len(probs) != 0 {
					t.Errorf("Check: unexpected problems %v", probs)
				}
				return
			}
			if len(probs) != 1 || probs[0].Field != tt.field || !strings.Contains(probs[0].Msg, tt.msg) {
				t.Errorf("Check = %v; want one problem with %s saying %q", probs, tt.field, tt.msg)
			}
		})
	}
}

func TestAcross(t *testing.T) {
	site := func(api, backend, server, stateFile, scope string) *Settings {
		s := &Settings{RuntimeAPI: api, Backend: backend, Server: server, StateFile: stateFile, StateScope: scope}
		s.SetDefaults(server)
		return s
	}
	const sock, file = "/run/haproxy/admin.sock", "/var/lib/haproxy/server-state"
	tests := []struct {
		name  string
		sites map[string]any
		want  map[string]string // site → field: message part
	}{
		{
			name: "one shared haproxy",
			sites: map[string]any{
				"brussels": site(sock, "webshop", "brussels", file, ""),
				"antwerp":  site(sock, "webshop", "antwerp", file, ""),
			},
		},
		{
			name: "one haproxy per site, same names",
			sites: map[string]any{
				"brussels": site("10.1.0.5:9999", "webshop", "web", file, ""),
				"antwerp":  site("10.2.0.5:9999", "webshop", "web", file, ""),
			},
		},
		{
			name: "same server twice",
			sites: map[string]any{
				"antwerp":  site(sock, "webshop", "web", file, ""),
				"brussels": site("/run/haproxy/../haproxy/admin.sock", "webshop", "web", file, ""),
			},
			want: map[string]string{"brussels": "server: webshop/web at /run/haproxy/../haproxy/admin.sock is also the server of site antwerp"},
		},
		{
			name: "shared backend, two state files",
			sites: map[string]any{
				"antwerp":  site(sock, "webshop", "antwerp", file, ""),
				"brussels": site(sock, "webshop", "brussels", "/tmp/state", ""),
			},
			want: map[string]string{"brussels": "state_file: /tmp/state differs from " + file + " at site antwerp"},
		},
		{
			name: "local scope, one file for two backends",
			sites: map[string]any{
				"antwerp":  site(sock, "shop-a", "antwerp", file, "local"),
				"brussels": site(sock, "shop-b", "brussels", file, "local"),
			},
			want: map[string]string{"brussels": "state_file: " + file + " holds backend shop-a at site antwerp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			for site, probs := range Across(tt.sites) {
				var parts []string
				for _, p := range probs {
					parts = append(parts, p.Field+": "+p.Msg)
				}
				got[site] = strings.Join(parts, "\n")
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Across = %q; want problems at %d sites", got, len(tt.want))
			}
			for site, msg := range tt.want {
				if !strings.Contains(got[site], msg) {
					t.Errorf("Across at %s = %q; want %q", site, got[site], msg)
				}
			}
		})
	}
}
