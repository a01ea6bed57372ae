package script

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

// The example of docs and the brief: the storage flip of the RHV pattern.
const goodStorage = `
fence:   [ansible-playbook, storage.yml, -e, "mode=read-only"]
promote: [ansible-playbook, storage.yml, -e, "mode=read-write"]
catch-up: [true]
timeout: 5m
retries: 1
env: {STORAGE_ARRAY: array-bxl}
dir: dr
`

func TestSettingsDefaults(t *testing.T) {
	s, probs, errs := decode(t, goodStorage, "/etc/siteflip")
	if len(probs) > 0 || len(errs) > 0 {
		t.Fatalf("problems: %v %v", probs, errs)
	}
	five := config.Duration(5 * time.Minute)
	want := &Settings{
		Fence:   []string{"ansible-playbook", "storage.yml", "-e", "mode=read-only"},
		CatchUp: []string{"true"},
		Promote: []string{"ansible-playbook", "storage.yml", "-e", "mode=read-write"},
		Timeout: &five,
		Retries: 1,
		Env:     map[string]string{"STORAGE_ARRAY": "array-bxl"},
		Dir:     "/etc/siteflip/dr",
	}
	if diff := cmp.Diff(want, s, cmpopts.IgnoreUnexported(Settings{})); diff != "" {
		t.Errorf("after defaults (-want +got):\n%s", diff)
	}
	if lint := Lint(&config.Group{Name: "webshop"}, s); len(lint) != 0 {
		t.Errorf("Lint: %v; want nothing", lint)
	}

	s, _, errs = decode(t, `{unfence: ["/usr/local/bin/unfence"]}`, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if s.Timeout.D() != 10*time.Minute || s.Dir != "/" || s.Retries != 0 || s.Shell {
		t.Errorf("timeout %s, dir %q, retries %d, shell %v; want the defaults 10m, /, 0, false", s.Timeout.D(), s.Dir, s.Retries, s.Shell)
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []config.FieldError
	}{
		{"no command", `{timeout: 1m}`, []config.FieldError{{Field: "", Msg: "no command is set: set at least one of fence, catch-up, promote, rejoin, unfence, drill or cleanup, e.g. promote: [ansible-playbook, storage.yml, -e, mode=read-write]"}}},
		{"empty list", `{promote: []}`, []config.FieldError{{Field: "promote", Msg: "is empty: write the program and its arguments as a list, e.g. [systemctl, start, app]"}}},
		{"no program", `{catch-up: ["  ", x]}`, []config.FieldError{{Field: "catch-up", Msg: "names no program"}}},
		{"shell with a list", `{shell: true, rejoin: [ansible-playbook, rejoin.yml], drill: ["echo ok"]}`, []config.FieldError{{Field: "rejoin", Msg: "has 2 items but shell: true runs one string: write the whole command line as one string"}}},
		{"zero timeout", `{cleanup: [rm, -rf, /srv/dr/drill], timeout: 0s}`, []config.FieldError{{Field: "timeout", Msg: "must be more than 0: set how long one attempt of a command may take, e.g. 5m"}}},
		{"negative retries", `{fence: ["true"], retries: -1}`, []config.FieldError{{Field: "retries", Msg: "-1 is negative: set how many more attempts a failed command gets, e.g. 1 (default 0)"}}},
		{"bad env name", `{fence: ["true"], env: {"STORAGE-ARRAY": x}}`, []config.FieldError{{Field: "env", Msg: `"STORAGE-ARRAY" is not an environment variable name: use letters, digits and underscores, e.g. STORAGE_ARRAY`}}},
		{"reserved env name", `{fence: ["true"], env: {SITEFLIP_SITE: x, SITEFLIP_X: y}}`, []config.FieldError{
			{Field: "env", Msg: "SITEFLIP_SITE: names starting with SITEFLIP_ are siteflip's own, set for every run: choose another name"},
			{Field: "env", Msg: "SITEFLIP_X: names starting with SITEFLIP_ are siteflip's own, set for every run: choose another name"}}},
		{"relative dir without a folder", `{fence: ["true"], dir: dr}`, []config.FieldError{{Field: "dir", Msg: `"dr" is not an absolute path: set the folder the commands run in, e.g. /srv/dr (default /)`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, probs, errs := decode(t, tc.text, "")
			if len(probs) > 0 {
				t.Fatalf("decode: %v", probs)
			}
			if diff := cmp.Diff(tc.want, errs); diff != "" {
				t.Errorf("Prepare (-want +got):\n%s", diff)
			}
		})
	}
}

// Unknown keys are refused, as for every type.
func TestSettingsStrict(t *testing.T) {
	_, probs, _ := decode(t, `{promote: ["true"], timout: 5m}`, "")
	if len(probs) != 1 {
		t.Errorf("problems %v; want one for timout", probs)
	}
}

func TestLint(t *testing.T) {
	g := &config.Group{Name: "webshop"}
	for _, tc := range []struct {
		name, text string
		want       []config.FieldError
	}{
		{"timeout set", `{promote: ["true"], timeout: 10m}`, nil},
		{"timeout left out", `{promote: ["true"]}`, []config.FieldError{{Field: "timeout", Msg: "a script without a timeout waits 10m at most per attempt: set timeout"}}},
		{"shell", `{promote: ["ansible-playbook storage.yml"], shell: true, timeout: 1m}`, []config.FieldError{{Field: "shell", Msg: "names and values are read by a shell: prefer a list"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, errs := decode(t, tc.text, "")
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if diff := cmp.Diff(tc.want, Lint(g, s)); diff != "" {
				t.Errorf("Lint (-want +got):\n%s", diff)
			}
		})
	}
}
