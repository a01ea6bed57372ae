package haproxy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

func TestFlipMovesNextRequest(t *testing.T) {
	l := startLab(t)
	brussels, antwerp := l.settings("brussels"), l.settings("antwerp")

	l.servedBy("brussels", 5)
	st, err := State(t.Context(), antwerp)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Admin.Maint() || st.Serving() {
		t.Fatalf("antwerp, disabled in haproxy.cfg, is %s; want maint", st)
	}

	// The kept-alive client has a connection open through HAProxy: its
	// next request must move too.
	st, err = Disable(t.Context(), brussels)
	if err != nil {
		t.Fatalf("Disable(brussels): %v", err)
	}
	if st.Admin&AdminForcedMaint == 0 {
		t.Errorf("Disable(brussels) returned %s; want forced maint", st)
	}
	st, err = Enable(t.Context(), antwerp)
	if err != nil {
		t.Fatalf("Enable(antwerp): %v", err)
	}
	if !st.Serving() {
		t.Errorf("Enable(antwerp) returned %s; want serving", st)
	}
	if got := l.get(l.client); got != "antwerp" {
		t.Fatalf("the first request after the flip was served by %s, want antwerp", got)
	}
	l.servedBy("antwerp", 10)

	// Doing it again changes nothing.
	before := l.snapshot()
	if _, err := Enable(t.Context(), antwerp); err != nil {
		t.Errorf("Enable(antwerp) again: %v", err)
	}
	if _, err := Disable(t.Context(), brussels); err != nil {
		t.Errorf("Disable(brussels) again: %v", err)
	}
	if after := l.snapshot(); after != before {
		t.Errorf("repeating Enable and Disable changed the servers:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// With health checks, Enable waits for a check to pass; the next
	// request moves all the same.
	guarded := [2]*Settings{l.settings("brussels"), l.settings("antwerp")}
	for _, s := range guarded {
		s.Backend = "guarded"
	}
	if got := l.getFrom(l.client, l.guarded); got != "brussels" {
		t.Fatalf("guarded was served by %s before the flip, want brussels", got)
	}
	if _, err := Disable(t.Context(), guarded[0]); err != nil {
		t.Fatal(err)
	}
	if st, err := Enable(t.Context(), guarded[1]); err != nil || !st.Checked || st.CheckHealth <= 2 {
		t.Fatalf("Enable(guarded/antwerp) = %#v, %v; want serving after a passed check", st, err)
	}
	if got := l.getFrom(l.client, l.guarded); got != "antwerp" {
		t.Fatalf("the first request to guarded after the flip was served by %s, want antwerp", got)
	}

	// The TCP runtime API reads the same state.
	overTCP := l.settings("antwerp")
	overTCP.RuntimeAPI = l.tcpAPI
	st, err = State(t.Context(), overTCP)
	if err != nil {
		t.Fatalf("State over TCP: %v", err)
	}
	if !st.Serving() || st.Backend != "webshop" || st.Server != "antwerp" || st.Port == 0 {
		t.Errorf("State over TCP = %+v; want webshop/antwerp serving", st)
	}
}

func TestReloadKeepsSavedState(t *testing.T) {
	l := startLab(t)
	brussels, antwerp := l.settings("brussels"), l.settings("antwerp")
	flip := func(from, to *Settings) {
		t.Helper()
		if _, err := Disable(t.Context(), from); err != nil {
			t.Fatal(err)
		}
		if _, err := Enable(t.Context(), to); err != nil {
			t.Fatal(err)
		}
		l.servedBy(to.Server, 1)
	}

	// Without SaveState, a reload forgets the flip.
	flip(brussels, antwerp)
	l.reload()
	l.servedBy("brussels", 3)

	flip(brussels, antwerp)
	st, err := SaveState(t.Context(), antwerp)
	if err != nil {
		t.Fatalf("SaveState: %v", err)
	}
	if !st.Serving() {
		t.Errorf("SaveState saved antwerp as %s; want serving", st)
	}
	checkStateFile(t, l, map[string]bool{"brussels": true, "antwerp": false})

	l.reload()
	l.servedBy("antwerp", 5)
	for _, s := range []struct {
		settings *Settings
		serving  bool
	}{{antwerp, true}, {brussels, false}} {
		st, err := State(t.Context(), s.settings)
		if err != nil {
			t.Fatal(err)
		}
		if st.Serving() != s.serving {
			t.Errorf("after the reload %s; want serving %v", st, s.serving)
		}
	}

	l.restart()
	l.servedBy("antwerp", 3)

	// Failback: antwerp, `disabled` in haproxy.cfg, must stay in
	// maintenance across a reload too.
	flip(antwerp, brussels)
	if _, err := SaveState(t.Context(), brussels); err != nil {
		t.Fatalf("SaveState: %v", err)
	}
	checkStateFile(t, l, map[string]bool{"brussels": false, "antwerp": true})
	l.reload()
	l.servedBy("brussels", 3)
}

// checkStateFile checks that the state file holds each webshop server with
// maint as given, and that no temporary file is left next to it.
func checkStateFile(t *testing.T, l *lab, maint map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(l.stateFile)
	if err != nil {
		t.Fatal(err)
	}
	states, err := parseServersState(string(b))
	if err != nil {
		t.Fatalf("state file: %v\n%s", err, b)
	}
	for server, want := range maint {
		st, ok := find(states, "webshop", server)
		if !ok {
			t.Errorf("state file lacks webshop/%s:\n%s", server, b)
		} else if st.Admin.Maint() != want {
			t.Errorf("state file has %s; want maint %v", st, want)
		}
	}
	if _, ok := find(states, "checked", "sick"); !ok {
		t.Errorf("state file lacks the other backend; load-server-state-from-file global needs every backend:\n%s", b)
	}
	tmp, _ := filepath.Glob(filepath.Join(l.dir, ".server-state.tmp-*"))
	if len(tmp) > 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	l := startLab(t)
	// A state file saved earlier must stay as it is.
	if _, err := SaveState(t.Context(), l.settings("brussels")); err != nil {
		t.Fatal(err)
	}
	savedBefore, err := os.ReadFile(l.stateFile)
	if err != nil {
		t.Fatal(err)
	}
	before := l.snapshot()

	with := func(change func(s *Settings)) *Settings {
		s := l.settings("antwerp")
		s.Timeout = config.Duration(2 * time.Second)
		change(s)
		return s
	}
	tests := []struct {
		name     string
		settings *Settings
		calls    []string // the calls that must fail; default all four
		want     error
		msg      []string // the message must say these
	}{
		{
			name:     "unknown server",
			settings: with(func(s *Settings) { s.Server = "ghent" }),
			want:     ErrNoServer,
			msg:      []string{l.sock, "show servers state", "webshop has no server ghent", "only [brussels antwerp]", "haproxy.cfg"},
		},
		{
			name:     "unknown backend",
			settings: with(func(s *Settings) { s.Backend = "shop" }),
			want:     ErrNoBackend,
			msg:      []string{l.sock, "show servers state", "backend shop", "set backend to a backend of haproxy.cfg"},
		},
		{
			name:     "no socket",
			settings: with(func(s *Settings) { s.RuntimeAPI = filepath.Join(l.dir, "gone.sock") }),
			want:     ErrUnreachable,
			msg:      []string{"gone.sock", "no such file or directory", "stats socket " + filepath.Join(l.dir, "gone.sock") + " level admin"},
		},
		{
			name:     "nothing on the TCP port",
			settings: with(func(s *Settings) { s.RuntimeAPI = "127.0.0.1:" + strconv.Itoa(l.deadPort) }),
			want:     ErrUnreachable,
			msg:      []string{"connection refused", "stats socket ipv4@127.0.0.1:" + strconv.Itoa(l.deadPort) + " level admin"},
		},
		{
			name:     "socket below level admin",
			settings: with(func(s *Settings) { s.RuntimeAPI = l.userSock }),
			calls:    []string{"Enable"}, // reading works at level user
			want:     ErrDenied,
			msg:      []string{l.userSock, "set server webshop/antwerp state ready", `HAProxy answered "Permission denied"`, "level admin"},
		},
		{
			name:     "socket below level admin, serving server",
			settings: with(func(s *Settings) { s.RuntimeAPI = l.userSock; s.Server = "brussels" }),
			calls:    []string{"Disable"},
			want:     ErrDenied,
			msg:      []string{l.userSock, "set server webshop/brussels state maint", `HAProxy answered "Permission denied"`, "level admin"},
		},
	}
	calls := map[string]func(*Settings) error{
		"State":     func(s *Settings) error { _, err := State(t.Context(), s); return err },
		"Enable":    func(s *Settings) error { _, err := Enable(t.Context(), s); return err },
		"Disable":   func(s *Settings) error { _, err := Disable(t.Context(), s); return err },
		"SaveState": func(s *Settings) error { _, err := SaveState(t.Context(), s); return err },
	}
	for _, tt := range tests {
		names := tt.calls
		if names == nil {
			names = []string{"State", "Enable", "Disable", "SaveState"}
		}
		for _, name := range names {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				err := calls[name](tt.settings)
				t.Log(err)
				if !errors.Is(err, tt.want) {
					t.Fatalf("%s: got %v; want %v", name, err, tt.want)
				}
				for _, m := range tt.msg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("%s: the error does not say %q:\n%v", name, m, err)
					}
				}
			})
		}
	}

	t.Run("state file in a missing folder", func(t *testing.T) {
		s := l.settings("brussels")
		s.StateFile = filepath.Join(l.dir, "missing", "server-state")
		_, err := SaveState(t.Context(), s)
		if err == nil || !strings.Contains(err.Error(), s.StateFile) || !strings.Contains(err.Error(), "writable") {
			t.Fatalf("SaveState into a missing folder: %v; want an error naming %s", err, s.StateFile)
		}
	})

	if after := l.snapshot(); after != before {
		t.Errorf("bad input changed the servers:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	savedAfter, err := os.ReadFile(l.stateFile)
	if err != nil || !bytes.Equal(savedAfter, savedBefore) {
		t.Errorf("bad input changed the state file (err %v):\nbefore:\n%s\nafter:\n%s", err, savedBefore, savedAfter)
	}
	entries, _ := os.ReadDir(l.dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	l.servedBy("brussels", 3)
}

func TestEnableChecksTheServerServes(t *testing.T) {
	l := startLab(t)
	checked := func(server string, timeout time.Duration) *Settings {
		s := &Settings{RuntimeAPI: l.sock, Backend: "checked", Server: server, StateFile: l.stateFile}
		s.SetDefaults(server)
		s.Timeout = config.Duration(timeout)
		return s
	}
	// A healthy server leaving maintenance: Enable waits for its first
	// check, which raises the check counter above rise.
	st, err := Enable(t.Context(), checked("fine", 10*time.Second))
	if err != nil {
		t.Fatalf("Enable(fine): %v", err)
	}
	if !st.Serving() || !st.Checked || st.CheckHealth <= 2 {
		t.Errorf("Enable(fine) returned %+v; want serving, checked, check health above rise 2", st)
	}

	tests := []struct {
		server  string
		timeout time.Duration
		msg     []string
	}{
		// Its health check fails: HAProxy counts it up when it leaves
		// maintenance, then down after the first check.
		// Long enough for its first check to have run, on a loaded machine;
		// what that check said must survive a deadline that cuts a read.
		{"sick", 2 * time.Second, []string{"set server checked/sick state ready", "did not come up within the timeout (2s)", "health check L4CON", "Connection refused"}},
		// It tracks a server in maintenance: no use waiting.
		{"tracker", time.Minute, []string{"checked/tracker tracks a server", "maint (tracked server)"}},
		// Weight 0 takes no new traffic: no use waiting.
		{"light", time.Minute, []string{"weight is 0 in haproxy.cfg", "give it a weight above 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			st, err := Enable(t.Context(), checked(tt.server, tt.timeout))
			t.Log(err)
			if !errors.Is(err, ErrNotApplied) {
				t.Fatalf("Enable: %v (state %s); want ErrNotApplied", err, st)
			}
			if st.Serving() {
				t.Errorf("Enable failed but returned a serving state %s", st)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("the error does not say %q:\n%v", m, err)
				}
			}
		})
	}
}
