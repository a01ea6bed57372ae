package postgres

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

func TestIsLocal(t *testing.T) {
	dir := t.TempDir()
	cluster := filepath.Join(dir, "data")
	if err := os.Mkdir(cluster, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cluster, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, dataDir string
		local               bool
		reason              string // part of the reason when not local
	}{
		{name: "loopback", host: "127.0.0.1", dataDir: cluster, local: true},
		{name: "loopback network", host: "127.0.2.1", dataDir: cluster, local: true},
		{name: "name", host: "localhost", dataDir: cluster, local: true},
		{name: "unix socket", host: "/run/postgresql", dataDir: cluster, local: true},
		{name: "other machine", host: "192.0.2.7", dataDir: cluster, reason: "192.0.2.7 (192.0.2.7) is not an address of this machine"},
		{name: "no cluster here", host: "127.0.0.1", dataDir: dir, reason: "data_dir " + dir + " holds no cluster on this host"},
		{name: "no data dir", host: "127.0.0.1", reason: "data_dir is not set"},
		{name: "unresolvable", host: "no-such-host.invalid", dataDir: cluster, reason: "cannot be resolved"},
	}
	// An address of a real interface, when there is one.
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				tests = append(tests, struct {
					name, host, dataDir string
					local               bool
					reason              string
				}{name: "interface address", host: n.IP.String(), dataDir: cluster, local: true})
				break
			}
		}
	}
	for _, tc := range tests {
		local, reason := IsLocal(Settings{Host: tc.host, Port: 5432, DataDir: tc.dataDir})
		if local != tc.local || (tc.local && reason != "") || (!tc.local && !strings.Contains(reason, tc.reason)) {
			t.Errorf("%s: IsLocal = %v, %q; want %v with a reason containing %q", tc.name, local, reason, tc.local, tc.reason)
		}
	}
}

func TestRunFenceCommand(t *testing.T) {
	s := Settings{Host: "127.0.0.1", Port: testbed.FreePort(t)} // nothing listens
	s.SetDefaults("site-a")
	t.Setenv("PGSITEFLIP_TEST", "must not reach the command")
	t.Setenv("SITEFLIP_TEST_VISIBLE", "reaches the command")

	// A server that accepts TCP connections (the kernel completes the
	// handshake) and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silentSettings := s
	silentSettings.Port = silent.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name    string
		s       Settings
		argv    []string
		wantErr []string // parts of the error; none: success
	}{
		{name: "not set", s: s, wantErr: []string{"fence_command is not set", s.addr()}},
		{name: "relative", s: s, argv: []string{"true"}, wantErr: []string{`"true" is not an absolute path`}},
		{name: "succeeds, nothing listens", s: s, argv: []string{"/bin/true"}},
		{name: "fails", s: s, argv: []string{"/bin/false"}, wantErr: []string{"exit status 1", "may still accept writes"}},
		{name: "output in the error", s: s, argv: []string{"/usr/bin/ls", "/nonexistent-siteflip"}, wantErr: []string{"No such file or directory"}},
		{name: "no PG variables", s: s, argv: []string{"/usr/bin/printenv", "PGSITEFLIP_TEST"}, wantErr: []string{"exit status 1"}},
		{name: "other variables", s: s, argv: []string{"/usr/bin/printenv", "SITEFLIP_TEST_VISIBLE"}},
		// A shell would split these words and run a second command.
		{name: "arguments verbatim", s: s, argv: []string{"/usr/bin/test", "a $(b); c", "=", "a $(b); c"}},
		{name: "port open, server silent", s: silentSettings, argv: []string{"/bin/true"}, wantErr: []string{"was not verified", "accepts connections", silentSettings.addr()}},
	} {
		tc.s.FenceCommand = tc.argv
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		err := RunFenceCommand(ctx, tc.s)
		cancel()
		switch {
		case len(tc.wantErr) == 0 && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case len(tc.wantErr) > 0 && err == nil:
			t.Errorf("%s: no error, want one about %q", tc.name, tc.wantErr)
		case len(tc.wantErr) > 0:
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
				}
			}
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

func TestRunFenceCommandServer(t *testing.T) {
	l := newLab(t, func(dir string, s *Settings) { s.SocketDir = filepath.Join(dir, "run") })
	a := l.initPrimary("site-a")
	stopAtEnd(t, a)
	s := a.Settings
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := a.StartPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if local, reason := IsLocal(s); !local {
		t.Errorf("IsLocal of a local instance: false, %s", reason)
	}

	// A command that succeeds and leaves the primary writable. The bound
	// leaves room for a loaded machine: what is checked is the verdict.
	s.FenceCommand = []string{"/bin/true"}
	vctx, vcancel := context.WithTimeout(ctx, 10*time.Second)
	err := RunFenceCommand(vctx, s)
	vcancel()
	if err == nil || !strings.Contains(err.Error(), "still runs as a primary") || !strings.Contains(err.Error(), s.addr()) {
		t.Errorf("fence command that leaves the primary running: %v, want a verification error naming %s", err, s.addr())
	}
	t.Logf("not verified: %v", err)

	// A command that stops it.
	pgctl := filepath.Join(s.BinDir, "pg_ctl")
	s.FenceCommand = []string{pgctl, "stop", "-D", s.DataDir, "-m", "fast"}
	if os.Geteuid() == 0 {
		s.FenceCommand = append([]string{"/usr/sbin/runuser", "-u", serverOSUser, "--"}, s.FenceCommand...)
	}
	if err := RunFenceCommand(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, alive := Postmaster(s.DataDir); alive {
		t.Error("the server runs after the fence command")
	}

	// A read-only standby (behind the boot guard) counts as fenced.
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s.FenceCommand = []string{"/bin/true"}
	if err := RunFenceCommand(ctx, s); err != nil {
		t.Errorf("fence command on a server in recovery: %v", err)
	}
}
