package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/siteflip/siteflip/internal/command"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// svcScript is a service run by commands: start launches a sleep that
// outlives it and writes its pid, status says whether that process lives
// (a zombie does not: nobody may reap it here), stop kills it. Each call
// is logged.
const svcScript = `#!/bin/sh
d=$(dirname "$0")
echo "$1" >>"$d/log"
case "$1" in
start)
	sh "$0" status && exit 0
	sleep 300 </dev/null >/dev/null 2>&1 &
	echo $! >"$d/pid"
	echo started ;;
stop)
	[ -f "$d/pid" ] && kill "$(cat "$d/pid")" 2>/dev/null
	exit 0 ;;
status)
	[ -f "$d/pid" ] || exit 1
	s=$(cut -d' ' -f3 "/proc/$(cat "$d/pid")/stat" 2>/dev/null) || exit 1
	[ -n "$s" ] && [ "$s" != Z ] ;;
esac
`

// fake is a service of svcScript in a folder of its own. The script is
// run by sh, never executed itself: a file just written may be held open
// for writing by a child another test forks at that moment (ETXTBSY).
type fake struct {
	t   *testing.T
	dir string
}

// newFake writes svcScript and stops what it started when the test ends.
func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, dir: t.TempDir()}
	if err := os.WriteFile(f.script(), []byte(svcScript), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f.run("status") == nil {
			if err := f.run("stop"); err != nil {
				t.Error(err)
			}
		}
	})
	return f
}

func (f *fake) script() string { return filepath.Join(f.dir, "svc") }

// commands is the settings' start, stop and status, as YAML.
func (f *fake) commands() string {
	return fmt.Sprintf(`start: [sh, %[1]q, start], stop: [sh, %[1]q, stop], status: [sh, %[1]q, status]`, f.script())
}

func (f *fake) run(arg string) error {
	_, err := command.Run(context.Background(), command.Command{Argv: []string{"sh", f.script(), arg}})
	return err
}

// calls counts the calls of arg logged so far.
func (f *fake) calls(arg string) int {
	b, err := os.ReadFile(filepath.Join(f.dir, "log"))
	if err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == arg {
			n++
		}
	}
	return n
}

// resourceOf is service app of group webshop, with settings (YAML) at
// antwerp.
func resourceOf(t *testing.T, settings string) (*config.Group, *config.Resource) {
	t.Helper()
	s, probs, errs := decode(t, settings)
	if len(probs) > 0 || len(errs) > 0 {
		t.Fatalf("settings %s: %v %v", settings, probs, errs)
	}
	g := &config.Group{Name: "webshop", Resources: []config.Resource{{Name: "app", Type: "service", Class: config.ClassService,
		Settings: map[string]any{"antwerp": s}}}}
	return g, &g.Resources[0]
}

func actorOf(t *testing.T, settings string) resource.Actor {
	t.Helper()
	g, r := resourceOf(t, settings)
	a, err := Type{}.Actor(g, r, "antwerp")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func observe(t *testing.T, settings string) status.ResourceView {
	t.Helper()
	g, r := resourceOf(t, settings)
	o, err := Type{}.Observer(g, r, "antwerp")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	return o.Observe(t.Context())
}

// health is a web server with a healthy and a sick page, a port that
// accepts connections and one that refuses them.
type health struct {
	web          string // base URL
	open, closed string // host:port
}

func newHealth(t *testing.T) health {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open.Close() })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	return health{web: srv.URL, open: open.Addr().String(), closed: closed.Addr().String()}
}

func TestObserve(t *testing.T) {
	h := newHealth(t)
	for _, tc := range []struct {
		name    string
		running bool
		more    string // settings besides the commands
		want    status.ResourceView
		err     string // what the view's error says
	}{
		{name: "stopped: ready", want: status.ResourceView{Up: true, Role: status.RoleStandby, Streaming: true}},
		{name: "stopped, health not asked", more: fmt.Sprintf(`health: {tcp: {address: %q}}`, h.closed),
			want: status.ResourceView{Up: true, Role: status.RoleStandby, Streaming: true}},
		{name: "running without health", running: true, want: status.ResourceView{Up: true, Role: status.RolePrimary}},
		{name: "running, http healthy", running: true, more: fmt.Sprintf(`health: {http: {url: "%s/healthz", body: "^ok"}}`, h.web),
			want: status.ResourceView{Up: true, Role: status.RolePrimary}},
		{name: "running, http sick", running: true, more: fmt.Sprintf(`health: {http: {url: "%s/sick", body: "^ok"}}`, h.web),
			want: status.ResourceView{Up: true, Role: status.RoleDown},
			err:  fmt.Sprintf(`health: expected HTTP 200 with a body matching "^ok" from %s/sick, seen HTTP 503`, h.web)},
		{name: "running, tcp healthy", running: true, more: fmt.Sprintf(`health: {tcp: {address: %q}}`, h.open),
			want: status.ResourceView{Up: true, Role: status.RolePrimary}},
		{name: "running, tcp refused", running: true, more: fmt.Sprintf(`health: {tcp: {address: %q}}`, h.closed),
			want: status.ResourceView{Up: true, Role: status.RoleDown},
			err:  "health: expected a connection to " + h.closed + ", seen connection refused"},
		{name: "running, command healthy", running: true, more: `health: {command: [sh, -c, "echo ok"]}`,
			want: status.ResourceView{Up: true, Role: status.RolePrimary}},
		{name: "running, command sick", running: true, more: `health: {command: [sh, -c, "echo queue full >&2; exit 2"]}`,
			want: status.ResourceView{Up: true, Role: status.RoleDown},
			err:  "health: expected sh to exit with status 0, seen exit status 2: queue full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			if tc.running {
				if err := f.run("start"); err != nil {
					t.Fatal(err)
				}
			}
			settings := "{" + f.commands()
			if tc.more != "" {
				settings += ", " + tc.more
			}
			got := observe(t, settings+"}")
			tc.want.Group, tc.want.Resource, tc.want.Type, tc.want.Error = "webshop", "app", "service", tc.err
			if got.ObservedAt.IsZero() {
				t.Error("no observation time")
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(status.ResourceView{}, "ObservedAt")); diff != "" {
				t.Errorf("view (-want +got):\n%s", diff)
			}
		})
	}
}

// A status command that cannot run says nothing of the service: its
// state is unknown, never "stopped".
func TestObserveStatusBroken(t *testing.T) {
	for _, tc := range []struct{ name, settings, err string }{
		{"missing program", `{start: [a], stop: [b], status: [/nonexistent/app-status]}`,
			"status unknown (app-status could not run: fork/exec /nonexistent/app-status: no such file or directory): fix the status command"},
		{"missing program through sh", `{shell: true, start: [a], stop: [b], status: ["no-such-app-status"]}`,
			`status unknown (sh -c "no-such-app-status" exited with status 127: `},
		{"not executable through sh", `{shell: true, start: [a], stop: [b], status: ["/etc"]}`,
			`status unknown (sh -c "/etc" exited with status 126: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := observe(t, tc.settings)
			if got.Up || got.Role != status.RoleUnknown || !strings.HasPrefix(got.Error, tc.err) {
				t.Errorf("view up %v, role %s, error %q; want down, unknown and an error starting %q", got.Up, got.Role, got.Error, tc.err)
			}
		})
	}
}

// Every step is verified and idempotent: a step run again (after a
// controller loss) finds its work done and runs no command twice.
func TestSteps(t *testing.T) {
	h := newHealth(t)
	f := newFake(t)
	a := actorOf(t, fmt.Sprintf(`{%s, health: {http: {url: "%s/healthz"}}}`, f.commands(), h.web))
	ctx := t.Context()
	running := func(want bool) {
		t.Helper()
		if got := f.run("status") == nil; got != want {
			t.Fatalf("running %v, want %v", got, want)
		}
	}

	for i := range 2 {
		out, err := a.Promote(ctx)
		want := map[string]string{OutputHealth: "HTTP 200"}
		if i == 0 {
			want[resource.OutputStdout] = "started"
		}
		if err != nil || !cmp.Equal(want, out) {
			t.Fatalf("promote %d: %v, %v; want %v", i+1, out, err, want)
		}
	}
	running(true)
	if n := f.calls("start"); n != 1 {
		t.Errorf("start ran %d times, want once: a running service is not started again", n)
	}
	if err := a.CatchUp(ctx, nil); err != nil {
		t.Errorf("catch-up: %v", err)
	}

	for i := range 2 {
		out, err := a.Fence(ctx)
		if err != nil || !cmp.Equal(map[string]string{OutputStopped: "true"}, out) {
			t.Fatalf("fence %d: %v, %v", i+1, out, err)
		}
	}
	running(false)
	if n := f.calls("stop"); n != 1 {
		t.Errorf("stop ran %d times, want once: a stopped service is not stopped again", n)
	}

	for i := range 2 {
		if err := a.Unfence(ctx); err != nil {
			t.Fatalf("unfence %d: %v", i+1, err)
		}
	}
	running(true)

	for i := range 2 {
		out, err := a.Rejoin(ctx, "brussels")
		if err != nil || out[OutputStopped] != "true" {
			t.Fatalf("rejoin %d: %v, %v", i+1, out, err)
		}
	}
	running(false)
	if s, p := f.calls("start"), f.calls("stop"); s != 2 || p != 2 {
		t.Errorf("start ran %d times and stop %d; want twice each", s, p)
	}
}

// Steps that cannot do their work say what, where, what they saw last
// and what to do.
func TestStepErrors(t *testing.T) {
	const where = "group webshop, service app at antwerp: "
	for _, tc := range []struct {
		name     string
		settings string
		step     func(resource.Actor) error
		want     string
	}{
		{"start fails", `{start: [sh, -c, "echo port in use >&2; exit 1"], stop: ["true"], status: ["false"]}`, promote,
			where + "start: sh exited with status 1: port in use; fix the start command, or what keeps the service from starting"},
		{"never healthy", `{start: ["true"], stop: ["true"], status: ["true"], start_timeout: 500ms, health: {command: [sh, -c, "echo 503 >&2; exit 22"]}}`, promote,
			where + "the service did not run healthy: gave up after 500ms; last: health: expected sh to exit with status 0, seen exit status 22: 503; fix the service, or its start command or health probe"},
		{"never runs", `{start: ["true"], stop: ["true"], status: ["false"], start_timeout: 300ms}`, promote,
			where + "the service did not run healthy: gave up after 300ms; last: status: stopped; fix the service, or its start command or health probe"},
		{"unfence never runs", `{start: ["true"], stop: ["true"], status: ["false"], start_timeout: 300ms}`, func(a resource.Actor) error { return a.Unfence(context.Background()) },
			where + "the service did not run healthy: gave up after 300ms; last: status: stopped"},
		{"never stops", `{start: ["true"], stop: ["true"], status: ["true"], stop_timeout: 300ms}`, fence,
			where + "the service did not stop: gave up after 300ms; status said last: running; fix the stop command, or stop the service by hand"},
		{"stop fails", `{start: ["true"], stop: [sh, -c, "echo permission denied >&2; exit 4"], status: ["true"]}`, fence,
			where + "stop: sh exited with status 4: permission denied; fix the stop command, or stop the service by hand"},
		{"rejoin never stops", `{start: ["true"], stop: ["true"], status: ["true"], stop_timeout: 300ms}`, func(a resource.Actor) error {
			_, err := a.Rejoin(context.Background(), "brussels")
			return err
		}, where + "the service did not stop: gave up after 300ms; status said last: running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.step(actorOf(t, tc.settings))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v\nwant: %s", err, tc.want)
			}
		})
	}
}

func promote(a resource.Actor) error { _, err := a.Promote(context.Background()); return err }
func fence(a resource.Actor) error   { _, err := a.Fence(context.Background()); return err }

// A stop that fails because there is nothing left to stop (pkill finding
// no process) has done its work.
func TestFenceStopFailsOnStopped(t *testing.T) {
	f := newFake(t)
	if err := f.run("start"); err != nil {
		t.Fatal(err)
	}
	a := actorOf(t, fmt.Sprintf(`{start: [sh, %[1]q, start], stop: [sh, -c, 'sh %[1]q stop; exit 1'], status: [sh, %[1]q, status]}`, f.script()))
	if out, err := a.Fence(t.Context()); err != nil || out[OutputStopped] != "true" {
		t.Fatalf("fence: %v, %v", out, err)
	}
}

func TestYield(t *testing.T) {
	f := newFake(t)
	if err := f.run("start"); err != nil {
		t.Fatal(err)
	}
	g, r := resourceOf(t, "{"+f.commands()+"}")
	stop, ok := Type{}.Yield(g, r, "antwerp")
	if !ok {
		t.Fatal("not stopped on lease loss by default")
	}
	if err := stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.calls("stop") != 1 {
		t.Errorf("stop ran %d times, want once", f.calls("stop"))
	}
	// The stop is not waited for, but this one is done when it returns.
	if f.run("status") == nil {
		t.Error("still running after the yield")
	}

	g, r = resourceOf(t, "{"+f.commands()+", stop_on_lease_loss: false}")
	if _, ok := (Type{}).Yield(g, r, "antwerp"); ok {
		t.Error("stopped on lease loss with stop_on_lease_loss: false")
	}
	if _, ok := (Type{}).Yield(g, r, "brussels"); ok {
		t.Error("stopped at a site it has no settings for")
	}
}

func TestDrill(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "drill")
	b := resource.Bubble{Run: "d-20260102-1", Address: "192.0.2.10", Netns: "sf-d1"}
	for _, tc := range []struct {
		name      string
		settings  string
		start     map[string]string
		wantCopy  string // the marker's content after Start, "" for none
		teardowns bool
	}{
		{"commands", fmt.Sprintf(`{unit: app, drill: {start: [sh, -c, 'echo "$SITEFLIP_BUBBLE_ADDRESS $SITEFLIP_BUBBLE_NETNS $SITEFLIP_RUN" | tee %[1]q'], stop: [rm, -f, %[1]q]}}`, marker),
			map[string]string{resource.OutputStdout: "192.0.2.10 sf-d1 d-20260102-1"}, "192.0.2.10 sf-d1 d-20260102-1\n", true},
		{"shell commands", fmt.Sprintf(`{unit: app, shell: true, drill: {start: ['echo "$SITEFLIP_RUN" >%[1]q'], stop: ['rm -f %[1]q']}}`, marker),
			map[string]string{}, "d-20260102-1\n", true},
		{"none", `{unit: app}`,
			map[string]string{resource.OutputSkipped: "no drill.start command: the service is left out of drills"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, r := resourceOf(t, tc.settings)
			d, err := Type{}.Drill(g, r, "antwerp", b)
			if err != nil {
				t.Fatal(err)
			}
			out, err := d.Clone(t.Context())
			if err != nil || !cmp.Equal(map[string]string{resource.OutputSkipped: "a service holds no data"}, out) {
				t.Errorf("clone: %v, %v", out, err)
			}
			out, err = d.Start(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.start, out); diff != "" {
				t.Errorf("start (-want +got):\n%s", diff)
			}
			got, _ := os.ReadFile(marker)
			if string(got) != tc.wantCopy {
				t.Errorf("the drill's copy wrote %q, want %q", got, tc.wantCopy)
			}
			for range 2 {
				if err := d.Teardown(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Stat(marker); !os.IsNotExist(err) {
				t.Errorf("after teardown: %v", err)
			}
			if runs, err := d.Leftovers(); runs != nil || err != nil {
				t.Errorf("leftovers: %v, %v", runs, err)
			}
		})
	}
	g, r := resourceOf(t, `{unit: app, drill: {start: [sh, -c, "echo no address >&2; exit 1"], stop: ["true"]}}`)
	d, err := Type{}.Drill(g, r, "antwerp", b)
	if err != nil {
		t.Fatal(err)
	}
	want := "group webshop, service app at antwerp: drill.start: sh exited with status 1: no address; fix the drill.start command"
	if _, err := d.Start(t.Context()); err == nil || err.Error() != want {
		t.Errorf("failing drill.start: %v\nwant: %s", err, want)
	}
}

func TestNoSettings(t *testing.T) {
	g, r := resourceOf(t, `{unit: app}`)
	want := "group webshop, service app: no settings at site brussels"
	if _, err := (Type{}).Actor(g, r, "brussels"); err == nil || err.Error() != want {
		t.Errorf("actor: %v", err)
	}
	if _, err := (Type{}).Observer(g, r, "brussels"); err == nil || err.Error() != want {
		t.Errorf("observer: %v", err)
	}
}

// A step whose caller gives up before its own timeout says so, and the
// error carries the caller's reason.
func TestStepCallerGivesUp(t *testing.T) {
	a := actorOf(t, `{start: ["true"], stop: ["true"], status: ["true"]}`)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	_, err := a.Fence(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Errorf("fence past its caller's deadline: %v", err)
	}
}
