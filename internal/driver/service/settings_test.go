package service

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/siteflip/siteflip/internal/command"
	"github.com/siteflip/siteflip/internal/config"
)

// decode decodes one site's block strictly, as config.Load does, and
// prepares it.
func decode(t *testing.T, text string) (*Settings, []config.Problem, []config.FieldError) {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(text), &node); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	s := &Settings{}
	_, probs := config.DecodeStrict(&node, s, "")
	return s, probs, Prepare(s, "antwerp", "/etc/siteflip")
}

const (
	goodUnit     = `{unit: webshop-app.service}`
	goodCommands = `
start: [/usr/local/bin/app, --listen, 127.0.0.1:8080]
stop: [pkill, -f, app]
status: [pgrep, -f, app]
health:
  http: {url: "http://127.0.0.1:8080/healthz", body: "ok"}
  timeout: 1s
start_timeout: 90s
stop_timeout: 10s
stop_on_lease_loss: false
drill:
  start: [/usr/local/bin/app, --drill]
  stop: [pkill, -f, app --drill]
`
)

func TestSettingsDefaults(t *testing.T) {
	s, probs, errs := decode(t, goodUnit)
	if len(probs) > 0 || len(errs) > 0 {
		t.Fatalf("problems: %v %v", probs, errs)
	}
	sixty, thirty, yes := config.Duration(60*time.Second), config.Duration(30*time.Second), true
	want := &Settings{Unit: "webshop-app.service", StartTimeout: &sixty, StopTimeout: &thirty, StopOnLeaseLoss: &yes}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("after defaults (-want +got):\n%s", diff)
	}

	s, probs, errs = decode(t, goodCommands)
	if len(probs) > 0 || len(errs) > 0 {
		t.Fatalf("problems: %v %v", probs, errs)
	}
	one, ninety, ten, no := config.Duration(time.Second), config.Duration(90*time.Second), config.Duration(10*time.Second), false
	want = &Settings{
		Start:  []string{"/usr/local/bin/app", "--listen", "127.0.0.1:8080"},
		Stop:   []string{"pkill", "-f", "app"},
		Status: []string{"pgrep", "-f", "app"},
		Health: &Health{
			HTTP:    &HTTP{URL: "http://127.0.0.1:8080/healthz", Status: 200, Body: "ok"},
			Timeout: &one,
		},
		StartTimeout: &ninety, StopTimeout: &ten, StopOnLeaseLoss: &no,
		Drill: &Drill{Start: []string{"/usr/local/bin/app", "--drill"}, Stop: []string{"pkill", "-f", "app --drill"}},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("after defaults (-want +got):\n%s", diff)
	}

	s, _, errs = decode(t, `{unit: app, health: {tcp: {address: "[::1]:8080"}}}`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if s.Health.Timeout.D() != 2*time.Second {
		t.Errorf("health.timeout %s; want the default 2s", s.Health.Timeout.D())
	}
}

func TestSettingsErrors(t *testing.T) {
	const cmds = `start: [a], stop: [b], status: [c]`
	for _, tc := range []struct {
		name string
		yaml string
		want map[string]string // field → words the message says
	}{
		{"unit", goodUnit, nil},
		{"commands", goodCommands, nil},
		{"shell", `{shell: true, start: ["app >>/var/log/app.log 2>&1 &"], stop: ["pkill app"], status: ["pgrep app"], health: {command: ["curl -fsS http://127.0.0.1/ | grep ok"]}}`, nil},
		{"unit with a drill and a shell health command", `{unit: app, shell: true, health: {command: ["true"]}, drill: {start: ["a"], stop: ["b"]}}`, nil},
		{"health tcp", `{unit: app, health: {tcp: {address: "127.0.0.1:8080"}}}`, nil},
		{"nothing", `{}`, map[string]string{"unit": "no way to run the service is set: set unit (a systemd unit, e.g. webshop-app.service) or the three commands start, stop and status"}},
		{"unit and commands", `{unit: app, stop: [b], status: [c]}`, map[string]string{"stop": "unit and stop are both set: run the service by a systemd unit (unit) or by start, stop and status commands, not both"}},
		{"bad unit", `{unit: "--now"}`, map[string]string{"unit": `"--now" is not a systemd unit name: write the unit as systemctl names it, e.g. webshop-app.service`}},
		{"unit with a space", `{unit: "app service"}`, map[string]string{"unit": "is not a systemd unit name"}},
		{"start alone", `{start: [a]}`, map[string]string{
			"stop":   "is required with start: set the command that stops the service, e.g. [systemctl, stop, app]",
			"status": "is required with start: set the command that exits 0 when the service runs",
		}},
		{"no status", `{start: [a], stop: [b]}`, map[string]string{"status": "is required with start and stop"}},
		{"empty start", `{start: [], stop: [b], status: [c]}`, map[string]string{"start": "is empty: write the program and its arguments as a list"}},
		{"blank program", `{start: [" "], stop: [b], status: [c]}`, map[string]string{"start": "names no program"}},
		{"shell with a list", `{shell: true, start: [app, --listen], stop: [b], status: [c]}`, map[string]string{"start": "has 2 items but shell: true runs one string"}},
		{"zero timeouts", `{` + cmds + `, start_timeout: 0s, stop_timeout: 0s}`, map[string]string{
			"start_timeout": "must be more than 0: set how long a start may take",
			"stop_timeout":  "must be more than 0: set how long a stop may take",
		}},
		{"empty health", `{` + cmds + `, health: {}}`, map[string]string{"health": "no probe is set: set one of http, tcp or command, or leave health out"}},
		{"two probes", `{` + cmds + `, health: {http: {url: "http://127.0.0.1/"}, tcp: {address: "127.0.0.1:80"}}}`, map[string]string{
			"health.tcp": "http and tcp are both set: a health probe asks one question; keep one"}},
		{"three probes", `{` + cmds + `, health: {http: {url: "http://127.0.0.1/"}, tcp: {address: "127.0.0.1:80"}, command: [x]}}`, map[string]string{
			"health.tcp": "http, tcp and command are all set"}},
		{"health timeout 0", `{` + cmds + `, health: {tcp: {address: "127.0.0.1:80"}, timeout: 0s}}`, map[string]string{"health.timeout": "must be more than 0"}},
		{"http, no url", `{` + cmds + `, health: {http: {status: 204}}}`, map[string]string{"health.http.url": "is required: set the URL to GET, e.g. http://127.0.0.1:8080/healthz"}},
		{"http, bad values", `{` + cmds + `, health: {http: {url: "ftp://127.0.0.1/", status: 700, body: "(("}}}`, map[string]string{
			"health.http.url":    `"ftp://127.0.0.1/" is not an http or https URL`,
			"health.http.status": "700 is not an HTTP status",
			"health.http.body":   `"((" is not a regular expression`,
		}},
		{"http, no host", `{` + cmds + `, health: {http: {url: "http:///healthz"}}}`, map[string]string{"health.http.url": "has no host"}},
		{"http, placeholder", `{` + cmds + `, health: {http: {url: "http://{app}/healthz"}}}`, map[string]string{"health.http.url": "a service's probe takes no placeholders"}},
		{"tcp, no address", `{` + cmds + `, health: {tcp: {}}}`, map[string]string{"health.tcp.address": "is required"}},
		{"tcp, no port", `{` + cmds + `, health: {tcp: {address: localhost}}}`, map[string]string{"health.tcp.address": `"localhost" is not host:port`}},
		{"tcp, port 0", `{` + cmds + `, health: {tcp: {address: "127.0.0.1:0"}}}`, map[string]string{"health.tcp.address": `has port "0": set a port from 1 to 65535`}},
		{"empty health command", `{` + cmds + `, health: {command: []}}`, map[string]string{"health.command": "is empty"}},
		{"empty drill", `{` + cmds + `, drill: {}}`, map[string]string{"drill.start": "is required in drill"}},
		{"drill without stop", `{` + cmds + `, drill: {start: [a]}}`, map[string]string{"drill.stop": "is required with drill.start: set the command that stops the drill's copy"}},
		{"drill without start", `{` + cmds + `, drill: {stop: [a]}}`, map[string]string{"drill.start": "is required with drill.stop"}},
		{"drill, shell with a list", `{shell: true, start: [a], stop: [b], status: [c], drill: {start: [a, b], stop: [c]}}`, map[string]string{"drill.start": "has 2 items"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, probs, errs := decode(t, tc.yaml)
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

// Decoding is strict: a misspelt key is an error.
func TestSettingsUnknownField(t *testing.T) {
	_, probs, _ := decode(t, `{unit: app, restart: always}`)
	if len(probs) != 1 || probs[0].Field != "restart" || !strings.Contains(probs[0].Msg, "unknown field") {
		t.Fatalf("decoding restart: %v; want one unknown field restart", probs)
	}
}

func TestLint(t *testing.T) {
	g := &config.Group{Name: "webshop"}
	s, _, _ := decode(t, goodUnit)
	got := Lint(g, s)
	want := []config.FieldError{{Field: "health",
		Msg: "a service without a health probe is promoted as soon as its status says running: add health (http, tcp or command)"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("without health (-want +got):\n%s", diff)
	}
	s, _, _ = decode(t, goodCommands)
	if got := Lint(g, s); len(got) > 0 {
		t.Errorf("with health: %v", got)
	}
}

// A unit is run by systemctl, its name never read as an option
// (Settings.Check refuses a leading dash).
func TestUnitCommands(t *testing.T) {
	s, _, errs := decode(t, goodUnit)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	start, stop, status := commands(s)
	got := []command.Command{start, stop, status}
	want := []command.Command{
		{Argv: []string{"systemctl", "start", "webshop-app.service"}},
		{Argv: []string{"systemctl", "stop", "webshop-app.service"}},
		{Argv: []string{"systemctl", "is-active", "--quiet", "webshop-app.service"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unit commands (-want +got):\n%s", diff)
	}
	// A shell setting applies to the operator's commands, not to systemctl.
	s.Shell = true
	if start, _, _ := commands(s); start.Shell {
		t.Errorf("systemctl run by a shell: %+v", start)
	}
}
