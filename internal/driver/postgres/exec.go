package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/priority"
)

// serverOSUser is the OS user PostgreSQL servers and tools run as when the
// calling process is root: PostgreSQL refuses to run as root.
const serverOSUser = "postgres"

// installHint ends every error about missing PostgreSQL binaries.
const installHint = "install postgresql-15 (apt-get install postgresql-15) or set bin_dir"

// osUser is who to run PostgreSQL programs as. A nil *osUser means "as
// ourselves" (we are not root).
type osUser struct {
	uid, gid uint32
	home     string
}

// runAsUser returns the postgres OS user when we are root, else nil.
func runAsUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverOSUser)
	if err != nil {
		return nil, fmt.Errorf("running as root, so postgres must run as OS user %q, but looking it up failed: %w; install postgresql-15, which creates it, or create the user", serverOSUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q has non-numeric uid %q", serverOSUser, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q has non-numeric gid %q", serverOSUser, u.Gid)
	}
	return &osUser{uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, nil
}

// chown gives path to u; a nil u leaves it alone.
func (u *osUser) chown(path string) error {
	if u == nil {
		return nil
	}
	if err := os.Chown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("give %s to OS user %s: %w", path, serverOSUser, err)
	}
	return nil
}

// prepare makes cmd run as u (when u is not nil) from "/" with an
// environment free of PG* variables plus extraEnv.
func (u *osUser) prepare(cmd *exec.Cmd, extraEnv ...string) {
	env := make([]string, 0, len(os.Environ())+len(extraEnv)+1)
	for _, kv := range os.Environ() {
		// PGDATA, PGPORT, PGHOST and friends would silently change what
		// the tools do; everything they need is on their command line.
		if strings.HasPrefix(kv, "PG") || (u != nil && strings.HasPrefix(kv, "HOME=")) {
			continue
		}
		env = append(env, kv)
	}
	if u != nil {
		env = append(env, "HOME="+u.home)
	}
	cmd.Env = append(env, extraEnv...)
	cmd.Dir = "/" // a root-only working directory would upset the tools
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if u != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
	}
}

// binary returns the path of a PostgreSQL program in s.BinDir.
func binary(s Settings, name string) (string, error) {
	if s.BinDir == "" {
		return "", fmt.Errorf("bin_dir is not set and no %s/<version>/bin/postgres was found: %s", debianPostgresRoot, installHint)
	}
	p := filepath.Join(s.BinDir, name)
	if !isExecutable(p) {
		return "", fmt.Errorf("%s not found in bin_dir %s: %s", name, s.BinDir, installHint)
	}
	return p, nil
}

// run runs a PostgreSQL tool to completion as u. ctx cancellation kills
// the tool's whole process group (initdb, for one, has children). The
// error names the tool and what it was doing, and ends with the last lines
// of its output.
func run(ctx context.Context, u *osUser, what string, extraEnv []string, path string, args ...string) error {
	_, err := runOutput(ctx, u, what, extraEnv, path, args...)
	return err
}

// runOutput is run that also returns the tool's output (stdout and stderr
// together).
func runOutput(ctx context.Context, u *osUser, what string, extraEnv []string, path string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	u.prepare(cmd, extraEnv...)
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Should a stray child keep the output pipe open, give up on it.
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := priority.Run(cmd); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return out.Bytes(), fmt.Errorf("%s: %s failed: %w%s", what, filepath.Base(path), err, outputTail(out.Bytes()))
	}
	return out.Bytes(), nil
}

// outputTail formats the last lines of a tool's output for an error.
func outputTail(out []byte) string {
	const maxLines = 6
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return " (no output)"
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return "; output: " + strings.Join(lines, " | ")
}

// fileTail returns the last lines of a log file for an error, or "".
func fileTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	return strings.Replace(outputTail(b), "; output:", "; server log "+path+":", 1)
}

// prepareDataDir makes dir an empty directory owned by u with mode 0700,
// refusing one that already holds files. Missing parents are created 0755
// so that u can reach dir.
func prepareDataDir(u *osUser, dir string) error {
	if dir == "" {
		return errors.New("data_dir is not set: set it to the directory for this instance's cluster")
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("data_dir %q is not absolute: give an absolute path", dir)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("create parent of data dir %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("create data dir %s: %w", dir, err)
		}
	case err != nil:
		return fmt.Errorf("read data dir %s: %w", dir, err)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
			return fmt.Errorf("data dir %s already holds a PostgreSQL cluster (PG_VERSION exists): remove it or point data_dir at an empty directory", dir)
		}
		return fmt.Errorf("data dir %s is not empty: empty it or point data_dir at an empty directory", dir)
	}
	if err := u.chown(dir); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("set mode 0700 on data dir %s: %w", dir, err)
	}
	return nil
}

// openLog opens (creating if needed) the server log for appending, and
// makes sure u owns it, the user the server runs as.
func openLog(u *osUser, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open server log %s: %w; its directory must exist and be writable", path, err)
	}
	if err := u.chown(path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// prepareSocketDir creates the socket directory named in s, when one is,
// and gives it to u so that the server can create its socket there.
func prepareSocketDir(u *osUser, s Settings) error {
	if s.SocketDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.SocketDir, 0o755); err != nil {
		return fmt.Errorf("create socket dir %s: %w", s.SocketDir, err)
	}
	return u.chown(s.SocketDir)
}
