package check

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/siteflip/siteflip/internal/config"
)

// decode decodes one site's block strictly, as config.Load does, and
// prepares it with dir as the topology's folder.
func decode(t *testing.T, text, dir string) (*Settings, []config.Problem, []config.FieldError) {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(text), &node); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	s := &Settings{}
	_, probs := config.DecodeStrict(&node, s, "")
	return s, probs, Prepare(s, "brussels", dir)
}

// The example of each kind, as docs/design/drills.md shows them.
const (
	goodSQL = `
timeout: 3s
sql:
  resource: db
  database: webshop
  user: siteflip
  password_file: secrets/check.pw
  query: "SELECT count(*) FROM orders WHERE created_at > now() - interval '1 hour'"
  expect: "42"
  min_rows: 1
  newer_than: 10m
`
	goodHTTP = `{http: {url: "http://{web}/health", status: 204, body: '"status":\s*"ok"'}}`
	goodTCP  = `{tcp: {address: "{db.host}:{db.port}"}}`
	goodDNS  = `{dns: {server: "{name}", name: db.shop.example., address: "{db.host}"}}`
)

func TestSettingsDefaults(t *testing.T) {
	s, probs, errs := decode(t, goodSQL, "/etc/siteflip")
	if len(probs) > 0 || len(errs) > 0 {
		t.Fatalf("problems: %v %v", probs, errs)
	}
	three, ten := config.Duration(3*time.Second), config.Duration(10*time.Minute)
	expect := "42"
	want := &Settings{
		Timeout: &three,
		SQL: &SQL{
			Resource:     "db",
			Database:     "webshop",
			User:         "siteflip",
			PasswordFile: "/etc/siteflip/secrets/check.pw",
			Query:        "SELECT count(*) FROM orders WHERE created_at > now() - interval '1 hour'",
			Expect:       &expect,
			MinRows:      1,
			NewerThan:    &ten,
		},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("after defaults (-want +got):\n%s", diff)
	}

	s, _, errs = decode(t, `{http: {url: "https://shop.example/health"}}`, "/")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if s.Timeout.D() != 5*time.Second || s.HTTP.Status != 200 {
		t.Errorf("timeout %s, status %d; want the defaults 5s and 200", s.Timeout.D(), s.HTTP.Status)
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want map[string]string // field → words the message says
	}{
		{"sql", goodSQL, nil},
		{"http", goodHTTP, nil},
		{"tcp", goodTCP, nil},
		{"dns", goodDNS, nil},
		{"sql, least", `{sql: {resource: db, user: u, query: SELECT 1}}`, nil},
		{"http, literal", `{http: {url: "http://10.1.0.20:8080/health?x=%7B"}}`, nil},
		{"http, IPv6 host placeholder", `{http: {url: "http://{web.host}:8080/"}}`, nil},
		{"tcp, literal", `{tcp: {address: "[2001:db8::1]:5432"}}`, nil},
		{"dns, literal", `{dns: {server: 10.1.0.53, name: db.shop.example, address: "2001:db8::20"}}`, nil},
		{"nothing", `{}`, map[string]string{"sql": "no check is set: set one of sql, http, tcp or dns"}},
		{"two kinds", `{sql: {resource: db, user: u, query: SELECT 1}, tcp: {address: "{db}"}}`, map[string]string{
			"tcp": "sql and tcp are both set: a check asks one question",
		}},
		{"three kinds", `{http: {url: "http://{web}/"}, tcp: {address: "{db}"}, dns: {server: "{name}", name: a.example., address: 10.0.0.1}}`, map[string]string{
			"tcp": "http, tcp and dns are all set",
		}},
		{"zero timeout", `{timeout: 0s, tcp: {address: "{db}"}}`, map[string]string{"timeout": "must be more than 0"}},
		{"empty sql", `{sql: {}}`, map[string]string{
			"sql.resource": "is required: name the data resource",
			"sql.user":     "is required",
			"sql.query":    "is required: write one statement that returns rows",
		}},
		{"sql, bad values", `{sql: {resource: "DB", user: u, query: SELECT 1, password_file: a, password_env: "1X", min_rows: -1, newer_than: 0s}}`, map[string]string{
			"sql.resource":      `"DB" is not a resource name`,
			"sql.password_file": "password_file and password_env are both set",
			"sql.password_env":  `"1X" is not an environment variable name`,
			"sql.min_rows":      "-1 is negative",
			"sql.newer_than":    "must be more than 0: set how old the newest row may be",
		}},
		{"http, no url", `{http: {status: 200}}`, map[string]string{"http.url": "is required"}},
		{"http, ftp", `{http: {url: "ftp://{web}/"}}`, map[string]string{"http.url": "is not an http or https URL"}},
		{"http, no host", `{http: {url: "http:///health"}}`, map[string]string{"http.url": "has no host"}},
		{"http, unclosed", `{http: {url: "http://{web/health"}}`, map[string]string{"http.url": "has a { without its }: write a placeholder as {db}, {db.host} or {db.port}"}},
		{"http, stray close", `{http: {url: "http://web}/"}}`, map[string]string{"http.url": "has a } without its {"}},
		{"http, bad part", `{http: {url: "http://{web.user}/"}}`, map[string]string{"http.url": "has placeholder {web.user}"}},
		{"http, bad status and body", `{http: {url: "http://{web}/", status: 700, body: "(("}}`, map[string]string{
			"http.status": "700 is not an HTTP status",
			"http.body":   `"((" is not a regular expression`,
		}},
		{"tcp, no address", `{tcp: {}}`, map[string]string{"tcp.address": "is required"}},
		{"tcp, no port", `{tcp: {address: "{db.host}"}}`, map[string]string{"tcp.address": "is not host:port"}},
		{"tcp, port 0", `{tcp: {address: "10.1.0.20:0"}}`, map[string]string{"tcp.address": `has port "0": set a port from 1 to 65535`}},
		{"empty dns", `{dns: {}}`, map[string]string{
			"dns.server":  "is required",
			"dns.name":    "is required",
			"dns.address": "is required",
		}},
		{"dns, bad values", `{dns: {server: "{name", name: "a..example.", address: "{db}"}}`, map[string]string{
			"dns.server":  "has a { without its }",
			"dns.name":    "is not a domain name",
			"dns.address": "is not an IP address",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, probs, errs := decode(t, tc.yaml, "/etc/siteflip")
			if len(probs) > 0 {
				t.Fatalf("decoding: %v", probs)
			}
			got := map[string]string{}
			for _, e := range errs {
				if _, dup := got[e.Field]; dup {
					t.Errorf("two problems with %s: %q and %q", e.Field, got[e.Field], e.Msg)
				}
				got[e.Field] = e.Msg
			}
			for field, words := range tc.want {
				if msg, ok := got[field]; !ok {
					t.Errorf("no problem reported with %s (want one saying %q); got %v", field, words, errs)
				} else if !strings.Contains(msg, words) {
					t.Errorf("%s: %q does not say %q", field, msg, words)
				}
			}
			for field, msg := range got {
				if _, ok := tc.want[field]; !ok {
					t.Errorf("unexpected problem: %s: %s", field, msg)
				}
			}
		})
	}
}

// Decoding is strict: a misspelt key is an error, and so is a password
// written in the topology.
func TestSettingsUnknownField(t *testing.T) {
	_, probs, _ := decode(t, `{sql: {resource: db, user: u, query: SELECT 1, password: secret}}`, "/")
	if len(probs) != 1 || probs[0].Field != "sql.password" || !strings.Contains(probs[0].Msg, "unknown field") {
		t.Fatalf("decoding an inline password: %v; want one unknown field sql.password", probs)
	}
}

// The resources a check names must be in its group, and an sql check's a
// postgres or mariadb one: Lint warns at load, Verifier refuses.
func TestCrossCheck(t *testing.T) {
	g := &config.Group{Name: "webshop", Resources: []config.Resource{
		{Name: "db", Type: "postgres", Class: config.ClassData, Data: true},
		{Name: "news", Type: "mariadb", Class: config.ClassData, Data: true},
		{Name: "name", Type: "dns", Class: config.ClassTraffic},
		{Name: "other", Type: "check", Class: config.ClassCheck},
	}}
	for _, tc := range []struct {
		name string
		yaml string
		want string // the one problem, "" for none
	}{
		{"sql postgres", `{sql: {resource: db, user: u, query: SELECT 1}}`, ""},
		{"sql mariadb", `{sql: {resource: news, user: u, query: SELECT 1}}`, ""},
		{"dns", goodDNS, ""},
		{"sql missing", `{sql: {resource: orders, user: u, query: SELECT 1}}`, `sql.resource: resource "orders" is not in group webshop: name one of its postgres or mariadb resources`},
		{"sql of dns", `{sql: {resource: name, user: u, query: SELECT 1}}`, "sql.resource: name is a dns resource: an sql check asks the server of a postgres or mariadb resource"},
		{"placeholder missing", `{tcp: {address: "{cache}"}}`, `tcp.address: placeholder {cache}: resource "cache" is not in group webshop: name one of its resources`},
		{"placeholder of a check", `{http: {url: "http://{other.host}/"}}`, "http.url: placeholder {other.host}: other is a check, which has no address: name a database or a dns resource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, errs := decode(t, tc.yaml, "/")
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var got []string
			for _, fe := range Lint(g, s) {
				got = append(got, fe.Field+": "+fe.Msg)
			}
			want := []string{tc.want}
			if tc.want == "" {
				want = nil
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Lint (-want +got):\n%s", diff)
			}
			r := &config.Resource{Name: "c", Type: "check", Settings: map[string]any{"brussels": s}}
			_, err := Type{}.Verifier(g, r, "brussels")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Verifier: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Verifier: %v; want an error saying %q", err, tc.want)
			}
		})
	}
	if _, err := (Type{}).Verifier(g, &config.Resource{Name: "c", Type: "check"}, "brussels"); err == nil || err.Error() != "group webshop, check c: no settings at site brussels" {
		t.Errorf("Verifier without settings: %v", err)
	}
}
