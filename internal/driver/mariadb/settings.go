package mariadb

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Settings is the per-site block of a mariadb resource: one server. The
// YAML fields are what a topology says; the passwords are read from their
// files by Resolve when the agent acts, not when the topology loads (the
// operator's machine has no secrets).
type Settings struct {
	// Host and Port are where clients and the other site's server reach
	// it.
	Host string `yaml:"host"`
	Port int    `yaml:"port"` // default 3306
	// DataDir is its data directory, on the server's machine.
	DataDir string `yaml:"data_dir"`
	// StateDir holds the option file siteflip starts it with (also its
	// boot guard), its pid file, error log, socket and the writable mark,
	// outside the data directory (a backup never copies them). Default:
	// data_dir + ".siteflip".
	StateDir string `yaml:"state_dir"`
	// Socket is the server's Unix socket; default state_dir/mariadb.sock.
	Socket string `yaml:"socket"`
	// ServerID is its server_id, one per site.
	ServerID int `yaml:"server_id"`
	// User is the account the agent acts with (READ_ONLY ADMIN among its
	// privileges: it must act on a read-only server); default siteflip.
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password_file"`
	// ReplicationUser is the account the other site's server replicates
	// with; default repl.
	ReplicationUser         string `yaml:"replication_user"`
	ReplicationPasswordFile string `yaml:"replication_password_file"`
	// ProofUser has no READ_ONLY ADMIN and may write only the heartbeat
	// table: a write of it refused proves the server read-only, one that
	// goes through proves it writable; default siteflip_hb.
	ProofUser         string `yaml:"proof_user"`
	ProofPasswordFile string `yaml:"proof_password_file"`

	// Resolved by Resolve.
	Admin, AdminPassword string `yaml:"-"`
	Repl, ReplPassword   string `yaml:"-"`
	Proof, ProofPassword string `yaml:"-"`
}

// FieldError is one problem with one field of Settings.
type FieldError struct {
	Field string // the yaml key
	Msg   string // what is wrong and what to do
}

const (
	defaultPort      = 3306
	defaultUser      = "siteflip"
	defaultReplUser  = "repl"
	defaultProofUser = "siteflip_hb"
	// maxSocketPath is the longest Unix socket path: sun_path is 108
	// bytes with the NUL.
	maxSocketPath = 107
)

// SetDefaults fills the fields left empty and makes relative password
// files relative to dir (the topology's folder).
func (s *Settings) SetDefaults(dir string) {
	if s.Port == 0 {
		s.Port = defaultPort
	}
	if s.StateDir == "" && s.DataDir != "" {
		s.StateDir = filepath.Clean(s.DataDir) + ".siteflip"
	}
	if s.Socket == "" && s.StateDir != "" {
		s.Socket = filepath.Join(s.StateDir, "mariadb.sock")
	}
	if s.User == "" {
		s.User = defaultUser
	}
	if s.ReplicationUser == "" {
		s.ReplicationUser = defaultReplUser
	}
	if s.ProofUser == "" {
		s.ProofUser = defaultProofUser
	}
	for _, p := range []*string{&s.PasswordFile, &s.ReplicationPasswordFile, &s.ProofPasswordFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Check reports every problem with the settings, after SetDefaults.
func (s *Settings) Check() []FieldError {
	var out []FieldError
	if s.Host == "" {
		out = append(out, FieldError{"host", "missing: the address where clients and the other site's server reach this server"})
	}
	if s.Port < 1 || s.Port > 65535 {
		out = append(out, FieldError{"port", fmt.Sprintf("%d is not a TCP port (1-65535)", s.Port)})
	}
	for _, f := range []struct{ name, path string }{{"data_dir", s.DataDir}, {"state_dir", s.StateDir}, {"socket", s.Socket}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			out = append(out, FieldError{f.name, fmt.Sprintf("%q is relative: give an absolute path", f.path)})
		}
	}
	if s.DataDir == "" {
		out = append(out, FieldError{"data_dir", "missing: the server's data directory"})
	}
	if len(s.Socket) > maxSocketPath {
		out = append(out, FieldError{"socket", fmt.Sprintf("%q is %d bytes, over the %d a Unix socket path may have: set a shorter socket or state_dir", s.Socket, len(s.Socket), maxSocketPath)})
	}
	if s.ServerID < 1 || s.ServerID > 4294967295 {
		out = append(out, FieldError{"server_id", fmt.Sprintf("%d: give each site's server its own server_id, 1 to 4294967295", s.ServerID)})
	}
	for _, f := range []struct{ name, path string }{
		{"password_file", s.PasswordFile}, {"replication_password_file", s.ReplicationPasswordFile}, {"proof_password_file", s.ProofPasswordFile},
	} {
		if f.path == "" {
			out = append(out, FieldError{f.name, "missing: a file holding the account's password"})
		}
	}
	return out
}

// Resolve returns the settings with the passwords read from their files.
func (s Settings) Resolve() (Settings, error) {
	read := func(field, path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("mariadb at %s: %s: %w", s.Addr(), field, err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("mariadb at %s: %s %s is empty", s.Addr(), field, path)
		}
		return pw, nil
	}
	var err error
	s.Admin, s.Repl, s.Proof = s.User, s.ReplicationUser, s.ProofUser
	if s.AdminPassword, err = read("password_file", s.PasswordFile); err != nil {
		return s, err
	}
	if s.ReplPassword, err = read("replication_password_file", s.ReplicationPasswordFile); err != nil {
		return s, err
	}
	if s.ProofPassword, err = read("proof_password_file", s.ProofPasswordFile); err != nil {
		return s, err
	}
	return s, nil
}

// Addr is host:port.
func (s Settings) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// dsn is a go-sql-driver/mysql DSN for an account over TCP.
func (s Settings) dsn(user, password string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/?timeout=2s&readTimeout=10s&writeTimeout=10s&interpolateParams=true", user, password, s.Addr())
}
