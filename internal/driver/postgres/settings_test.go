package postgres

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
)

func TestSetDefaults(t *testing.T) {
	var s Settings
	s.SetDefaults("site-a")
	want := Settings{
		Port:            5432,
		Database:        "postgres",
		BinDir:          findBinDir(debianPostgresRoot),
		User:            "postgres",
		ReplicationUser: "replicator",
		ApplicationName: "site-a",
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("SetDefaults on empty settings (-want +got):\n%s", diff)
	}

	withData := Settings{DataDir: "/srv/pg/main/"}
	withData.SetDefaults("site-a")
	if got, want := withData.DrillDir, "/srv/pg/main.drills"; got != want {
		t.Errorf("SetDefaults with data_dir %q: drill_dir %q, want %q", withData.DataDir, got, want)
	}

	set := Settings{
		Host: "db", Port: 6000, Database: "app", BinDir: "/opt/pg/bin", User: "watcher",
		ReplicationUser: "repl", ApplicationName: "custom", DataDir: "/srv/pg", DrillDir: "/srv/drills",
	}
	got := set
	got.SetDefaults("site-a")
	if diff := cmp.Diff(set, got); diff != "" {
		t.Errorf("SetDefaults changed fields that were set (-want +got):\n%s", diff)
	}
}

func TestFindBinDir(t *testing.T) {
	root := t.TempDir()
	mk := func(version string, withPostgres bool) {
		bin := filepath.Join(root, version, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if withPostgres {
			if err := os.WriteFile(filepath.Join(bin, "postgres"), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("9.6", true)
	mk("15", true)
	mk("16", false) // no server binary: a client-only install
	mk("latest", true)

	if got, want := findBinDir(root), filepath.Join(root, "15", "bin"); got != want {
		t.Errorf("findBinDir = %q, want %q", got, want)
	}
	if got := findBinDir(filepath.Join(root, "missing")); got != "" {
		t.Errorf("findBinDir of a missing root = %q, want \"\"", got)
	}
}

func TestCheck(t *testing.T) {
	valid := func() Settings {
		s := Settings{Host: "127.0.0.1", DataDir: "/var/lib/siteflip/pg"}
		s.SetDefaults("site-a")
		return s
	}
	tests := []struct {
		name   string
		modify func(*Settings)
		fields []string // fields with errors, in order
	}{
		{"valid", func(*Settings) {}, nil},
		{"valid without data dir", func(s *Settings) { s.DataDir = "" }, nil},
		{"missing host", func(s *Settings) { s.Host = "" }, []string{"host"}},
		{"host list", func(s *Settings) { s.Host = "a,b" }, []string{"host"}},
		{"port zero", func(s *Settings) { s.Port = 0 }, []string{"port"}},
		{"port too big", func(s *Settings) { s.Port = 70000 }, []string{"port"}},
		{"relative data dir", func(s *Settings) { s.DataDir = "data/pg" }, []string{"data_dir"}},
		{"long socket path", func(s *Settings) { s.SocketDir = "/" + strings.Repeat("s", 100) }, []string{"socket_dir"}},
		{"long data dir as socket dir", func(s *Settings) { s.DataDir = "/" + strings.Repeat("d", 100) }, []string{"socket_dir"}},
		{"long data dir with short socket dir", func(s *Settings) {
			s.DataDir = "/" + strings.Repeat("d", 100)
			s.SocketDir = "/run/siteflip"
		}, nil},
		{"quote in socket dir", func(s *Settings) { s.SocketDir = `/tmp/a"b` }, []string{"socket_dir"}},
		{"quote in data dir", func(s *Settings) { s.DataDir = `/srv/a"b` }, []string{"data_dir"}},
		{"command substitution in data dir", func(s *Settings) { s.DataDir = "/srv/$(touch /tmp/x)" }, []string{"data_dir"}},
		{"backquote in bin dir", func(s *Settings) { s.BinDir = "/opt/`id`/bin" }, []string{"bin_dir"}},
		{"backslash in socket dir", func(s *Settings) { s.SocketDir = `/run/a\b` }, []string{"socket_dir"}},
		{"single quote in data dir", func(s *Settings) { s.DataDir = "/srv/it's" }, []string{"data_dir"}},
		{"newline in data dir", func(s *Settings) { s.DataDir = "/srv/a\nb" }, []string{"data_dir"}},
		{"tab in bin dir", func(s *Settings) { s.BinDir = "/opt/a\tb" }, []string{"bin_dir"}},
		{"spaces and semicolon in paths", func(s *Settings) {
			s.DataDir = "/srv/pg data; x"
			s.SocketDir = "/run/pg sock;"
			s.BinDir = "/opt/pg bin/15"
		}, nil},
		{"default drill dir", func(s *Settings) {
			if s.DrillDir != "/var/lib/siteflip/pg.drills" {
				t.Errorf("default drill_dir %q", s.DrillDir)
			}
		}, nil},
		{"drill dir elsewhere", func(s *Settings) { s.DrillDir = "/srv/drills" }, nil},
		{"drill dir beside a data dir of the same prefix", func(s *Settings) { s.DrillDir = "/var/lib/siteflip/pg-drills" }, nil},
		{"relative drill dir", func(s *Settings) { s.DrillDir = "drills" }, []string{"drill_dir"}},
		{"drill dir is the data dir", func(s *Settings) { s.DrillDir = "/var/lib/siteflip/pg/" }, []string{"drill_dir"}},
		{"drill dir inside the data dir", func(s *Settings) { s.DrillDir = "/var/lib/siteflip/pg/drills" }, []string{"drill_dir"}},
		{"drill dir holds the data dir", func(s *Settings) { s.DrillDir = "/var/lib/siteflip" }, []string{"drill_dir"}},
		{"drill dir is the root", func(s *Settings) { s.DrillDir = "/" }, []string{"drill_dir"}},
		{"quote in drill dir", func(s *Settings) { s.DrillDir = `/srv/a"b` }, []string{"drill_dir"}},
		{"drill dir without data dir", func(s *Settings) { s.DataDir = "" }, nil},
		{"fence command", func(s *Settings) { s.FenceCommand = []string{"/usr/bin/ssh", "db1", "systemctl stop postgresql"} }, nil},
		{"relative fence command", func(s *Settings) { s.FenceCommand = []string{"ssh", "db1"} }, []string{"fence_command"}},
		{"empty fence program", func(s *Settings) { s.FenceCommand = []string{""} }, []string{"fence_command"}},
		{"drill clone command", func(s *Settings) { s.DrillCloneCommand = []string{"/usr/local/sbin/snap", "--zfs"} }, nil},
		{"relative drill clone command", func(s *Settings) { s.DrillCloneCommand = []string{"snap"} }, []string{"drill_clone_command"}},
		{"empty drill clone program", func(s *Settings) { s.DrillCloneCommand = []string{""} }, []string{"drill_clone_command"}},
		{"no user", func(s *Settings) { s.User = "" }, []string{"user"}},
		{"no replication user", func(s *Settings) { s.ReplicationUser = "" }, []string{"replication_user"}},
		{"password file and env", func(s *Settings) {
			s.PasswordFile = "/etc/siteflip/pw"
			s.PasswordEnv = "PW"
		}, []string{"password_file"}},
		{"bad password env", func(s *Settings) { s.PasswordEnv = "1PW" }, []string{"password_env"}},
		{"replication password file and env", func(s *Settings) {
			s.ReplicationPasswordFile = "/etc/siteflip/repl"
			s.ReplicationPasswordEnv = "REPL_PW"
		}, []string{"replication_password_file"}},
		{"bad replication password env", func(s *Settings) { s.ReplicationPasswordEnv = "REPL-PW" }, []string{"replication_password_env"}},
		{"no application name", func(s *Settings) { s.ApplicationName = "" }, []string{"application_name"}},
		{"non-ascii application name", func(s *Settings) { s.ApplicationName = "site-ä" }, []string{"application_name"}},
		{"long application name", func(s *Settings) { s.ApplicationName = strings.Repeat("a", 64) }, []string{"application_name"}},
		{"several", func(s *Settings) {
			s.Host = ""
			s.Port = -1
		}, []string{"host", "port"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := valid()
			tc.modify(&s)
			errs := s.Check()
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
				if e.Msg == "" {
					t.Errorf("error for %s has no message", e.Field)
				}
			}
			if diff := cmp.Diff(tc.fields, fields); diff != "" {
				t.Errorf("Check() fields (-want +got):\n%s\nerrors: %v", diff, errs)
			}
		})
	}
}

func TestCheckShellMessage(t *testing.T) {
	s := Settings{Host: "127.0.0.1", DataDir: "/srv/$(x)"}
	s.SetDefaults("site-a")
	errs := s.Check()
	want := `data_dir: "/srv/$(x)" contains $: PostgreSQL's tools hand this path to /bin/sh; use a path of letters, digits, '/', '.', '-', '_' and spaces`
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("Check() = %v, want exactly %q", errs, want)
	}
}

func TestPassword(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pwFile := write("pw", "  s3cret\n")
	emptyFile := write("empty", "\n")
	t.Setenv("SITEFLIP_TEST_PW", "from-env")
	t.Setenv("SITEFLIP_TEST_EMPTY", "")

	tests := []struct {
		name    string
		s       Settings
		repl    bool
		want    string
		wantErr string // substring of the error; "" means no error
	}{
		{name: "neither", want: ""},
		{name: "file trimmed", s: Settings{PasswordFile: pwFile}, want: "s3cret"},
		{name: "env", s: Settings{PasswordEnv: "SITEFLIP_TEST_PW"}, want: "from-env"},
		{name: "both", s: Settings{PasswordFile: pwFile, PasswordEnv: "SITEFLIP_TEST_PW"}, wantErr: "only one"},
		{name: "missing file", s: Settings{PasswordFile: filepath.Join(dir, "nope")}, wantErr: filepath.Join(dir, "nope")},
		{name: "empty file", s: Settings{PasswordFile: emptyFile}, wantErr: emptyFile + " is empty"},
		{name: "unset env", s: Settings{PasswordEnv: "SITEFLIP_TEST_UNSET"}, wantErr: "SITEFLIP_TEST_UNSET"},
		{name: "empty env", s: Settings{PasswordEnv: "SITEFLIP_TEST_EMPTY"}, wantErr: "SITEFLIP_TEST_EMPTY named by password_env is empty"},
		{name: "replication neither", repl: true, s: Settings{PasswordFile: pwFile}, want: ""},
		{name: "replication file", repl: true, s: Settings{ReplicationPasswordFile: pwFile}, want: "s3cret"},
		{name: "replication env", repl: true, s: Settings{ReplicationPasswordEnv: "SITEFLIP_TEST_PW"}, want: "from-env"},
		{name: "replication unset env", repl: true, s: Settings{ReplicationPasswordEnv: "SITEFLIP_TEST_UNSET"}, wantErr: "replication_password_env"},
		{name: "replication both", repl: true, s: Settings{ReplicationPasswordFile: pwFile, ReplicationPasswordEnv: "X"}, wantErr: "replication_password_file and replication_password_env"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			get := tc.s.Password
			if tc.repl {
				get = tc.s.ReplicationPassword
			}
			got, err := get()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("got %q, want an error containing %q", got, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("password = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConninfoQuoting(t *testing.T) {
	nasty := `it's a \ "path" with spaces`
	cfg, err := pgx.ParseConfig(conninfo("host", "127.0.0.1", "port", "5999", "user", nasty, "application_name", nasty))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != nasty || cfg.RuntimeParams["application_name"] != nasty || cfg.Port != 5999 {
		t.Errorf("round trip: user %q, application_name %q, port %d", cfg.User, cfg.RuntimeParams["application_name"], cfg.Port)
	}
}

func TestServerOptions(t *testing.T) {
	s := Settings{Host: "127.0.0.1", Port: 6001, DataDir: "/srv/pg data"}
	s.SetDefaults("site-b")
	got := Instance{Settings: s, Site: "site-b"}.serverOptions()
	want := []string{
		"-c", "port=6001",
		"-c", "listen_addresses=127.0.0.1",
		"-c", "cluster_name=site-b",
		"-c", `unix_socket_directories="/srv/pg data"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("serverOptions (-want +got):\n%s", diff)
	}
}

func TestMissingBinaries(t *testing.T) {
	dir := t.TempDir()
	for _, binDir := range []string{"", filepath.Join(dir, "bin")} {
		s := Settings{Host: "127.0.0.1", Port: 6002, DataDir: filepath.Join(dir, "data"), BinDir: binDir}
		s.SetDefaults("site-a")
		s.BinDir = binDir // SetDefaults may have found a real one
		inst := Instance{Settings: s, Site: "site-a", LogFile: filepath.Join(dir, "log")}

		err := inst.InitPrimary(t.Context(), "pw", "repl")
		if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql-15") {
			t.Errorf("InitPrimary with bin_dir %q: error %v, want one saying how to install postgresql-15", binDir, err)
		}
		err = inst.CloneStandby(t.Context(), s, "repl")
		if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql-15") {
			t.Errorf("CloneStandby with bin_dir %q: error %v, want one saying how to install postgresql-15", binDir, err)
		}
		cmd := inst.ServerCommand()
		err = cmd.Start()
		if err == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql-15") {
			t.Errorf("ServerCommand with bin_dir %q: Start error %v, want one saying how to install postgresql-15", binDir, err)
		}
		if _, err := os.Stat(s.DataDir); err == nil {
			t.Errorf("data dir %s was created although nothing could run", s.DataDir)
		}
	}
}

// Without socket_dir the socket goes into the data dir, where pg_rewind
// fails: a warning, since the server runs until the first rejoin.
func TestLintSocketDir(t *testing.T) {
	s := Settings{Host: "10.1.0.20", DataDir: "/srv/pg"}
	got := Lint(&s)
	if len(got) != 1 || got[0].Field != "socket_dir" || !strings.Contains(got[0].Msg, "/srv/pg.run") {
		t.Errorf("no socket_dir: got %v, want one socket_dir warning suggesting /srv/pg.run", got)
	}
	s.SocketDir = "/run/siteflip/pg"
	if got := Lint(&s); len(got) != 0 {
		t.Errorf("socket_dir outside the data dir: got %v, want nothing", got)
	}
}
