package dns

import (
	"net/netip"
	"os"
	"path/filepath"
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

const good = `{name: db.shop.example., address: 10.1.0.20, serve: "10.1.0.10:53", zone: shop.example., servers: ["10.9.0.53:53"], tsig: {name: siteflip., secret_file: secrets/tsig}}`

func TestSettingsDefaults(t *testing.T) {
	s, probs, errs := decode(t, `{name: DB.Shop.Example., address: "::ffff:10.1.0.20", serve: 10.1.0.10, zone: shop.example., servers: [10.9.0.53, "[2001:db8::53]:5353", ns1.shop.example], tsig: {name: siteflip, algorithm: HMAC-SHA512., secret_file: secrets/tsig}}`, "/etc/siteflip")
	if len(probs) > 0 || len(errs) > 0 {
		t.Fatalf("problems: %v %v", probs, errs)
	}
	ttl := config.Duration(5 * time.Second)
	want := &Settings{
		Name:    "db.shop.example.",
		Address: "::ffff:10.1.0.20",
		TTL:     &ttl,
		Serve:   "10.1.0.10:53",
		Zone:    "shop.example.",
		Servers: []string{"10.9.0.53:53", "[2001:db8::53]:5353", "ns1.shop.example:53"},
		TSIG:    &TSIGSettings{Name: "siteflip.", Algorithm: "hmac-sha512", SecretFile: "/etc/siteflip/secrets/tsig"},
		Timeout: config.Duration(2 * time.Second),
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("after defaults (-want +got):\n%s", diff)
	}
	if got := s.Addrs(); !equalAddrs(got, []netip.Addr{netip.MustParseAddr("10.1.0.20")}) {
		t.Errorf("Addrs() = %v, want the IPv4 form 10.1.0.20", got)
	}
	if s.Apex() != "shop.example." || s.TTLDuration() != 5*time.Second {
		t.Errorf("Apex() = %s, TTLDuration() = %s", s.Apex(), s.TTLDuration())
	}

	// Serve-only settings: the zone is the name itself.
	s, _, errs = decode(t, `{name: db.shop.example., addresses: [10.1.0.20, "2001:db8::20"], ttl: 3s, serve: ":53"}`, "/")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if s.Apex() != "db.shop.example." || s.TTLDuration() != 3*time.Second || len(s.Addrs()) != 2 {
		t.Errorf("Apex() = %s, TTLDuration() = %s, Addrs() = %v", s.Apex(), s.TTLDuration(), s.Addrs())
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want map[string]string // field → words the message says
	}{
		{"good", good, nil},
		{"serve only", `{name: db.shop.example., address: 10.1.0.20, serve: "127.0.0.1:5353"}`, nil},
		{"nothing", `{}`, map[string]string{
			"name":    "is required",
			"address": "is required",
			"serve":   "neither serve nor servers",
		}},
		{"not fully qualified", `{name: db.shop.example, address: 10.1.0.20, serve: ":53"}`, map[string]string{
			"name": "end it with a dot",
		}},
		{"bad label", `{name: db..shop.example., address: 10.1.0.20, serve: ":53"}`, map[string]string{
			"name": "empty label",
		}},
		{"bad characters", `{name: "db shop.example.", address: 10.1.0.20, serve: ":53"}`, map[string]string{
			"name": `label "db shop"`,
		}},
		{"wildcard", `{name: "*.shop.example.", address: 10.1.0.20, serve: ":53"}`, map[string]string{
			"name": "wildcard",
		}},
		{"long label", `{name: ` + strings.Repeat("a", 64) + `.example., address: 10.1.0.20, serve: ":53"}`, map[string]string{
			"name": "label of 64 characters",
		}},
		{"zone does not contain the name", `{name: db.shop.example., zone: other.example., address: 10.1.0.20, serve: ":53"}`, map[string]string{
			"zone": "does not contain",
		}},
		{"bad address", `{name: db.shop.example., address: 10.1.0.300, serve: ":53"}`, map[string]string{
			"address": "not an IP address",
		}},
		{"address with prefix", `{name: db.shop.example., address: 10.1.0.0/24, serve: ":53"}`, map[string]string{
			"address": "not an IP address",
		}},
		{"unspecified address", `{name: db.shop.example., address: 0.0.0.0, serve: ":53"}`, map[string]string{
			"address": "cannot be a client's destination",
		}},
		{"zoned address", `{name: db.shop.example., address: "fe80::1%eth0", serve: ":53"}`, map[string]string{
			"address": "has a zone",
		}},
		{"both address and addresses", `{name: db.shop.example., address: 10.1.0.20, addresses: [10.1.0.21], serve: ":53"}`, map[string]string{
			"address": "both set",
		}},
		{"duplicate address", `{name: db.shop.example., addresses: [10.1.0.20, 10.1.0.21, 10.1.0.20], serve: ":53"}`, map[string]string{
			"addresses[2]": "listed twice",
		}},
		{"ttl 0", `{name: db.shop.example., address: 10.1.0.20, ttl: 0s, serve: ":53"}`, map[string]string{
			"ttl": "set 1s or more",
		}},
		{"ttl over a day", `{name: db.shop.example., address: 10.1.0.20, ttl: 25h, serve: ":53"}`, map[string]string{
			"ttl": "more than a day",
		}},
		{"ttl not whole seconds", `{name: db.shop.example., address: 10.1.0.20, ttl: 1500ms, serve: ":53"}`, map[string]string{
			"ttl": "whole number of seconds",
		}},
		{"serve on a name", `{name: db.shop.example., address: 10.1.0.20, serve: "agent.shop.example:53"}`, map[string]string{
			"serve": "must listen on an IP address",
		}},
		{"serve bad port", `{name: db.shop.example., address: 10.1.0.20, serve: "10.1.0.10:99999"}`, map[string]string{
			"serve": "port",
		}},
		{"servers without zone and tsig", `{name: db.shop.example., address: 10.1.0.20, servers: [10.9.0.53]}`, map[string]string{
			"zone": "required with servers",
			"tsig": "is required with servers",
		}},
		{"server bad port", `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: ["10.9.0.53:x"], tsig: {name: k., secret_env: K}}`, map[string]string{
			"servers[0]": "port",
		}},
		{"duplicate server", `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53, "10.9.0.53:53"], tsig: {name: k., secret_env: K}}`, map[string]string{
			"servers[1]": "listed twice",
		}},
		{"tsig without secret", `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53], tsig: {name: siteflip.}}`, map[string]string{
			"tsig": "has no secret",
		}},
		{"tsig with both secrets", `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53], tsig: {name: siteflip., secret_file: f, secret_env: E}}`, map[string]string{
			"tsig.secret_file": "both set",
		}},
		{"tsig bad env name", `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53], tsig: {name: siteflip., secret_env: "1-X"}}`, map[string]string{
			"tsig.secret_env": "not an environment variable name",
		}},
		{"tsig without name", `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53], tsig: {secret_env: K}}`, map[string]string{
			"tsig.name": "is required",
		}},
		{"unknown algorithm", `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53], tsig: {name: k., algorithm: hmac-sha3, secret_env: K}}`, map[string]string{
			"tsig.algorithm": "not a TSIG algorithm",
		}},
		{"md5", `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53], tsig: {name: k., algorithm: hmac-md5, secret_env: K}}`, map[string]string{
			"tsig.algorithm": "broken",
		}},
		{"tsig without servers", `{name: db.shop.example., address: 10.1.0.20, serve: ":53", tsig: {name: k., secret_env: K}}`, map[string]string{
			"tsig": "servers is not",
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

// A secret written in the topology is an unknown field, not a key.
func TestSettingsInlineSecret(t *testing.T) {
	_, probs, _ := decode(t, `{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53], tsig: {name: k., secret: c2VjcmV0}}`, "/")
	if len(probs) != 1 || probs[0].Field != "tsig.secret" || !strings.Contains(probs[0].Msg, "unknown field") {
		t.Fatalf("decoding an inline secret: %v; want one unknown field tsig.secret", probs)
	}
}

func TestSettingsAcross(t *testing.T) {
	prep := func(text string) *Settings {
		s, _, errs := decode(t, text, "/")
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return s
	}
	bySite := map[string]any{
		"antwerp":  prep(`{name: db.shop.example., address: 10.2.0.20, serve: ":53"}`),
		"brussels": prep(`{name: db.shop.example., address: 10.1.0.20, serve: ":53"}`),
	}
	if got := Across(bySite); len(got) != 0 {
		t.Errorf("Across of matching sites = %v", got)
	}
	bySite["brussels"] = prep(`{name: app.shop.example., address: 10.1.0.20, ttl: 10s, serve: ":53"}`)
	got := Across(bySite)
	want := map[string][]config.FieldError{"brussels": {
		{Field: "name", Msg: "app.shop.example. differs from db.shop.example. at site antwerp: every site of a dns resource sets the same name"},
		{Field: "zone", Msg: "app.shop.example. differs from db.shop.example. at site antwerp: every site of a dns resource sets the same zone"},
		{Field: "ttl", Msg: "10s differs from 5s at site antwerp: every site of a dns resource sets the same ttl"},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Across (-want +got):\n%s", diff)
	}
}

// The claim is the name on serve as the agent listens on it: one address
// written two ways is one claim.
func TestClaims(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want []config.Claim
	}{
		{`{name: DB.shop.example., address: 10.1.0.20, serve: 10.1.0.10}`, []config.Claim{{Field: "name", What: "dns name db.shop.example. on 10.1.0.10:53"}}},
		{`{name: db.shop.example., address: 10.1.0.20, serve: "[2001:DB8:0::10]:5353"}`, []config.Claim{{Field: "name", What: "dns name db.shop.example. on [2001:db8::10]:5353"}}},
		{`{name: db.shop.example., address: 10.1.0.20, serve: "2001:db8::10"}`, []config.Claim{{Field: "name", What: "dns name db.shop.example. on [2001:db8::10]:53"}}},
		{`{name: db.shop.example., address: 10.1.0.20, serve: ":53"}`, []config.Claim{{Field: "name", What: "dns name db.shop.example. on :53"}}},
		{`{name: db.shop.example., address: 10.1.0.20, zone: shop.example., servers: [10.9.0.53], tsig: {name: k., secret_env: K}}`, nil}, // nothing served here
	} {
		s, _, errs := decode(t, tc.yaml, "/")
		if len(errs) > 0 {
			t.Fatalf("%s: %v", tc.yaml, errs)
		}
		got := Claims(s)
		for i := range got {
			if got[i].Fix == "" {
				t.Errorf("%s: claim %q says nothing to do about a clash", tc.yaml, got[i].What)
			}
			got[i].Fix = ""
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Claims of %s (-want +got):\n%s", tc.yaml, diff)
		}
	}
}

func TestTTLWarning(t *testing.T) {
	for _, tc := range []struct {
		ttl, rto time.Duration
		warn     bool
	}{
		{5 * time.Second, 30 * time.Second, false},
		{15 * time.Second, 30 * time.Second, false}, // exactly half
		{16 * time.Second, 30 * time.Second, true},
		{30 * time.Second, 30 * time.Second, true},
		{5 * time.Second, 5 * time.Second, true},
		{time.Hour, 0, false}, // no target, nothing to compare with
	} {
		d := config.Duration(tc.ttl)
		s := Settings{TTL: &d}
		w := s.TTLWarning(tc.rto)
		if (w != "") != tc.warn {
			t.Errorf("ttl %s, rto %s: warning %q, want one: %v", tc.ttl, tc.rto, w, tc.warn)
		}
		if w != "" && !strings.Contains(w, "set ttl to "+(tc.rto/2).Truncate(time.Second).String()+" or less") {
			t.Errorf("ttl %s, rto %s: %q does not say what to set", tc.ttl, tc.rto, w)
		}
		g := &config.Group{RTOTarget: new(config.Duration(tc.rto))}
		if lint := Lint(g, &s); (len(lint) == 1 && lint[0].Field == "ttl") != tc.warn {
			t.Errorf("ttl %s, rto %s: Lint = %v", tc.ttl, tc.rto, lint)
		}
	}
}

func TestKey(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "bare")
	keygen := filepath.Join(dir, "keygen")
	empty := filepath.Join(dir, "empty")
	notB64 := filepath.Join(dir, "notb64")
	os.WriteFile(bare, []byte("  "+bindSecret+"\n"), 0o600)
	os.WriteFile(keygen, []byte("key \"siteflip\" {\n\talgorithm hmac-sha256;\n\tsecret \""+bindSecret+"\";\n};\n"), 0o600)
	os.WriteFile(empty, []byte("\n"), 0o600)
	os.WriteFile(notB64, []byte("not base64!"), 0o600)
	t.Setenv("SITEFLIP_TEST_TSIG", bindSecret)

	want := TSIG{Name: "siteflip.", Algorithm: "hmac-sha256", Secret: bindSecret}
	for _, tc := range []struct {
		name string
		tsig *TSIGSettings
		err  string
	}{
		{"bare file", &TSIGSettings{SecretFile: bare}, ""},
		{"tsig-keygen file", &TSIGSettings{SecretFile: keygen}, ""},
		{"env", &TSIGSettings{SecretEnv: "SITEFLIP_TEST_TSIG"}, ""},
		{"missing file", &TSIGSettings{SecretFile: filepath.Join(dir, "nope")}, "read tsig.secret_file"},
		{"empty file", &TSIGSettings{SecretFile: empty}, "holds no secret"},
		{"not base64", &TSIGSettings{SecretFile: notB64}, "not base64"},
		{"unset env", &TSIGSettings{SecretEnv: "SITEFLIP_TEST_TSIG_UNSET"}, "is not set or empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.tsig.Name, tc.tsig.Algorithm = "siteflip.", "hmac-sha256"
			s := Settings{TSIG: tc.tsig}
			got, err := s.Key()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Key() error = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || got != want {
				t.Fatalf("Key() = %+v, %v; want %+v", got, err, want)
			}
		})
	}
	if k, err := (&Settings{}).Key(); err != nil || k != (TSIG{}) {
		t.Errorf("Key() without tsig = %+v, %v; want the zero TSIG", k, err)
	}
}
