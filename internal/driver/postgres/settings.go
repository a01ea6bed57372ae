package postgres

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/siteflip/siteflip/internal/config"
)

// Settings is the per-site block of a postgres resource. The caller decodes
// it strictly from YAML, calls SetDefaults, resolves relative paths, and then
// calls Check.
type Settings struct {
	Host                    string `yaml:"host"`
	Port                    int    `yaml:"port"`     // default 5432
	Database                string `yaml:"database"` // default "postgres"
	DataDir                 string `yaml:"data_dir"`
	BinDir                  string `yaml:"bin_dir"`    // default: newest /usr/lib/postgresql/*/bin that has a postgres binary, else ""
	SocketDir               string `yaml:"socket_dir"` // optional, for the instance's unix socket; default the data dir, which stops pg_rewind (see Rejoin)
	User                    string `yaml:"user"`       // role siteflip observes as; default "postgres"
	PasswordFile            string `yaml:"password_file"`
	PasswordEnv             string `yaml:"password_env"`
	ReplicationUser         string `yaml:"replication_user"` // default "replicator"
	ReplicationPasswordFile string `yaml:"replication_password_file"`
	ReplicationPasswordEnv  string `yaml:"replication_password_env"`
	ApplicationName         string `yaml:"application_name"` // name the standby reports to its primary; default: the site name
	// ListenAddresses is what the server listens on when siteflip starts
	// it (listen_addresses); default: Host. A service address that lives
	// at both sites (a VIP announced by the active one) goes here.
	ListenAddresses string `yaml:"listen_addresses"`
	// DrillDir holds the drill copies made at this site
	// (docs/design/drills.md), one directory per drill run; default: the
	// data dir's path + ".drills". Teardown removes only what lies in it,
	// so it must neither be nor hold the data dir.
	DrillDir string `yaml:"drill_dir"`
	// FenceCommand fences an instance that is not on the agent's machine
	// (see IsLocal): an argument list, the first an absolute path, run
	// without a shell by RunFenceCommand. Empty: none.
	FenceCommand []string `yaml:"fence_command"`
	// DrillCloneCommand makes a drill's copy with a storage snapshot (LVM,
	// ZFS, btrfs) instead of pg_basebackup, for databases too large to
	// copy: an argument list, the first an absolute path, run without a
	// shell as siteflip's user between pg_backup_start and pg_backup_stop
	// on the standby (PostgreSQL 15 or later). Its environment names the
	// standby's data dir (SITEFLIP_DRILL_SOURCE), the copy's empty data dir
	// (SITEFLIP_DRILL_TARGET) and the drill run (SITEFLIP_DRILL_RUN); it
	// must leave at the target a copy of the source as of one moment, with
	// pg_wal a directory, not a link. Tablespaces outside the data dir are
	// refused. Teardown removes the target's files, but unmounts and
	// destroys nothing. Empty: pg_basebackup.
	DrillCloneCommand []string `yaml:"drill_clone_command"`
}

// FieldError is one problem with one field of Settings.
type FieldError struct {
	Field string // the yaml key, e.g. "port"
	Msg   string // what is wrong and what to do
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

const (
	defaultPort            = 5432
	defaultDatabase        = "postgres"
	defaultUser            = "postgres"
	defaultReplicationUser = "replicator"
	debianPostgresRoot     = "/usr/lib/postgresql"
	// drillDirSuffix makes the default drill_dir from data_dir.
	drillDirSuffix = ".drills"

	// maxSocketPath is the longest unix socket path PostgreSQL accepts:
	// sizeof(sockaddr_un.sun_path) on Linux is 108 including the NUL.
	maxSocketPath = 107
	// maxNameLen is NAMEDATALEN-1: PostgreSQL truncates application_name
	// and cluster_name to this many bytes.
	maxNameLen = 63
)

// SetDefaults fills the fields left empty. site is the site this block
// belongs to; it is the default application name. BinDir defaults to the
// newest /usr/lib/postgresql/<version>/bin on this host that holds a
// postgres binary, or stays "" if there is none.
func (s *Settings) SetDefaults(site string) {
	if s.Port == 0 {
		s.Port = defaultPort
	}
	if s.Database == "" {
		s.Database = defaultDatabase
	}
	if s.BinDir == "" {
		s.BinDir = findBinDir(debianPostgresRoot)
	}
	if s.User == "" {
		s.User = defaultUser
	}
	if s.ReplicationUser == "" {
		s.ReplicationUser = defaultReplicationUser
	}
	if s.ApplicationName == "" {
		s.ApplicationName = site
	}
	if s.DrillDir == "" && s.DataDir != "" {
		s.DrillDir = filepath.Clean(s.DataDir) + drillDirSuffix
	}
}

// findBinDir returns root/<version>/bin for the highest version that has a
// postgres binary, comparing versions numerically (15 > 9.6), or "".
func findBinDir(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	best, bestVer := "", []int(nil)
	for _, e := range entries {
		ver, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		bin := filepath.Join(root, e.Name(), "bin")
		if !isExecutable(filepath.Join(bin, "postgres")) {
			continue
		}
		if best == "" || versionLess(bestVer, ver) {
			best, bestVer = bin, ver
		}
	}
	return best
}

func parseVersion(name string) ([]int, bool) {
	parts := strings.Split(name, ".")
	ver := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		ver[i] = n
	}
	return ver, true
}

func versionLess(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Check reports every problem with the settings; nil means they are usable.
// Call it after SetDefaults.
func (s *Settings) Check() []FieldError {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	switch {
	case s.Host == "":
		add("host", "is required: set it to the address the instance listens on, e.g. 127.0.0.1")
	case strings.ContainsAny(s.Host, " \t\r\n,"):
		add("host", "%q must be a single host name or address without spaces or commas", s.Host)
	}
	if s.Port < 1 || s.Port > 65535 {
		add("port", "%d is out of range: set a TCP port from 1 to 65535 (default 5432)", s.Port)
	}
	if s.Database == "" {
		add("database", "is required: set the database siteflip connects to (default postgres)")
	}
	if s.DataDir != "" && !filepath.IsAbs(s.DataDir) {
		add("data_dir", "%q must be an absolute path on the database host", s.DataDir)
	}
	// The default drill_dir's problems are data_dir's, said once.
	derived := s.DataDir != "" && s.DrillDir == filepath.Clean(s.DataDir)+drillDirSuffix
	if s.DrillDir != "" && !derived && !filepath.IsAbs(s.DrillDir) {
		add("drill_dir", "%q must be an absolute path on the database host", s.DrillDir)
	}
	if s.DataDir != "" && s.DrillDir != "" {
		data, drills := filepath.Clean(s.DataDir), filepath.Clean(s.DrillDir)
		switch {
		case data == drills:
			add("drill_dir", "%q is the data dir: drill copies need a directory of their own (default: data_dir + %q)", s.DrillDir, drillDirSuffix)
		case within(data, drills):
			add("drill_dir", "%q is inside data_dir %q: drill copies must live outside production's data dir; choose another directory (default: data_dir + %q)", s.DrillDir, s.DataDir, drillDirSuffix)
		case within(drills, data):
			add("drill_dir", "%q holds data_dir %q: tearing a drill down removes what lies in drill_dir; choose a directory that does not hold the data dir (default: data_dir + %q)", s.DrillDir, s.DataDir, drillDirSuffix)
		}
	}
	if s.DataDir != "" && s.SocketDir != "" && filepath.IsAbs(s.SocketDir) {
		data, sock := filepath.Clean(s.DataDir), filepath.Clean(s.SocketDir)
		if data == sock || within(data, sock) {
			add("socket_dir", "%q is inside data_dir %q: pg_rewind copies the data dir and fails on the socket file, so every rejoin of an old primary would fail; set socket_dir to a directory outside the data dir, e.g. %s", s.SocketDir, s.DataDir, suggestSocketDir(s.DataDir))
		}
	}
	if s.SocketDir != "" && !filepath.IsAbs(s.SocketDir) {
		add("socket_dir", "%q must be an absolute path on the database host", s.SocketDir)
	}
	paths := []struct{ field, path string }{
		{"data_dir", s.DataDir}, {"socket_dir", s.SocketDir}, {"bin_dir", s.BinDir},
	}
	if !derived {
		paths = append(paths, struct{ field, path string }{"drill_dir", s.DrillDir})
	}
	for _, f := range paths {
		if bad := shellUnsafe(f.path); bad != "" {
			add(f.field, "%q contains %s: PostgreSQL's tools hand this path to /bin/sh; use a path of letters, digits, '/', '.', '-', '_' and spaces", f.path, bad)
		}
	}
	if dir := s.socketDir(); dir != "" {
		if p := dir + "/.s.PGSQL." + strconv.Itoa(s.Port); len(p) > maxSocketPath {
			add("socket_dir", "unix socket path %s is %d bytes, more than PostgreSQL's limit of %d: set socket_dir to a shorter directory", p, len(p), maxSocketPath)
		}
	}
	if s.User == "" {
		add("user", "is required: set the role siteflip observes as (default postgres)")
	}
	if s.ReplicationUser == "" {
		add("replication_user", "is required: set the role standbys replicate as (default replicator)")
	}
	checkSecret := func(fileField, file, envField, env string) {
		if file != "" && env != "" {
			add(fileField, "%s and %s are both set: set only one of them", fileField, envField)
		}
		if env != "" && !config.EnvName(env) {
			add(envField, "%q is not an environment variable name: use letters, digits and underscores, e.g. PGPASSWORD_SITE_A", env)
		}
	}
	checkSecret("password_file", s.PasswordFile, "password_env", s.PasswordEnv)
	checkSecret("replication_password_file", s.ReplicationPasswordFile, "replication_password_env", s.ReplicationPasswordEnv)

	if len(s.FenceCommand) > 0 && !filepath.IsAbs(s.FenceCommand[0]) {
		add("fence_command", "program %q is not an absolute path: the command runs without a shell or PATH lookup, so give the program's full path, e.g. [/usr/bin/ssh, db1, sudo, systemctl, stop, postgresql]", s.FenceCommand[0])
	}

	if len(s.DrillCloneCommand) > 0 && !filepath.IsAbs(s.DrillCloneCommand[0]) {
		add("drill_clone_command", "program %q is not an absolute path: the command runs without a shell or PATH lookup, so give the program's full path, e.g. [/usr/local/sbin/drill-snapshot]", s.DrillCloneCommand[0])
	}

	switch name := s.ApplicationName; {
	case name == "":
		add("application_name", "is required: set the name this site's standby reports to its primary (default: the site name)")
	case !printableASCII(name):
		add("application_name", "%q must be printable ASCII; PostgreSQL replaces other characters with '?'", name)
	case len(name) > maxNameLen:
		add("application_name", "%q is %d bytes; PostgreSQL truncates names to %d bytes, so set a shorter one", name, len(name), maxNameLen)
	}
	return errs
}

// shellUnsafe names the first character of path that a shell interprets
// inside double quotes, or that breaks a command line, or returns "".
// initdb, pg_ctl and pg_rewind build command lines for /bin/sh with paths
// in double quotes; siteflip itself runs no shell.
func shellUnsafe(path string) string {
	for _, r := range path {
		switch {
		case r == '"', r == '$', r == '\\', r == '\'':
			return string(r)
		case r == '`':
			return "a backquote"
		case r == '\n':
			return "a newline"
		case r < 32 || r == 127:
			return fmt.Sprintf("control character %U", r)
		}
	}
	return ""
}

// within says whether path lies inside dir; both are clean and absolute.
func within(dir, path string) bool {
	return dir == "/" && path != "/" || strings.HasPrefix(path, dir+"/")
}

// suggestSocketDir names a socket directory outside dataDir for messages:
// a sibling of the data dir (/srv/pg → /srv/pg.run).
func suggestSocketDir(dataDir string) string {
	return filepath.Clean(dataDir) + ".run"
}

// Lint warns about settings that work today but break a later run: no
// socket_dir puts the unix socket in the data dir, where pg_rewind fails
// on it, so an old primary can never rejoin.
func Lint(s *Settings) []FieldError {
	if s.SocketDir == "" && s.DataDir != "" {
		return []FieldError{{Field: "socket_dir", Msg: fmt.Sprintf("is not set, so the server's unix socket goes into data_dir %s, where pg_rewind fails on it and an old primary cannot rejoin: set socket_dir outside the data dir, e.g. %s", s.DataDir, suggestSocketDir(s.DataDir))}}
	}
	return nil
}

// socketDir is the directory the instance's unix socket goes into.
func (s *Settings) socketDir() string {
	if s.SocketDir != "" {
		return s.SocketDir
	}
	return s.DataDir
}

// addr is host:port, for messages and dialing.
func (s *Settings) addr() string {
	return joinHostPort(s.Host, s.Port)
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 32 || s[i] > 126 {
			return false
		}
	}
	return true
}

// Password returns the password of User, read from password_file (with
// surrounding whitespace trimmed) or from the password_env variable, or ""
// if neither is set.
func (s *Settings) Password() (string, error) {
	return readSecret("password_file", s.PasswordFile, "password_env", s.PasswordEnv)
}

// ReplicationPassword returns the password of ReplicationUser, read from
// replication_password_file (trimmed) or replication_password_env, or "" if
// neither is set.
func (s *Settings) ReplicationPassword() (string, error) {
	return readSecret("replication_password_file", s.ReplicationPasswordFile, "replication_password_env", s.ReplicationPasswordEnv)
}

func readSecret(fileField, file, envField, env string) (string, error) {
	switch {
	case file != "" && env != "":
		return "", fmt.Errorf("%s and %s are both set: set only one of them", fileField, envField)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read %s %s: %w; create it with the password or fix %s", fileField, file, err, fileField)
		}
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return "", fmt.Errorf("%s %s is empty: write the password into it", fileField, file)
		}
		return pw, nil
	case env != "":
		pw, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("environment variable %s named by %s is not set: export it in siteflip's environment", env, envField)
		}
		if pw == "" {
			return "", fmt.Errorf("environment variable %s named by %s is empty: set it to the password", env, envField)
		}
		return pw, nil
	}
	return "", nil
}
