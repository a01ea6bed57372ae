// Package frr owns how siteflip runs FRR, the routing suite that plays the
// router in the lab and in the BGP driver's tests: the files of one FRR
// instance (configurations, pid files, vty sockets, logs, all in one
// directory owned by the frr user), the daemons' command lines, and vtysh
// against them. Callers start the daemons their own way (the lab as
// detached processes, tests as children) in the instance's namespace.
//
// -N gives the daemons a pathspace named after the network namespace, so
// nothing they create by default collides with another FRR; in FRR 8.4 it
// does not switch the network namespace, which is why callers start the
// daemons inside it.
package frr

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/osuser"
)

// Bin is where Debian's frr package puts the daemons (vtysh is on PATH).
const Bin = "/usr/lib/frr"

// upTimeout is how long WaitUp waits for a daemon to answer.
const upTimeout = 15 * time.Second

// Instance is one FRR: its directory and its namespace, which is also its
// pathspace (-N).
type Instance struct {
	Dir       string
	Namespace string
}

// vtyDir is where the daemons put their vty sockets: vtysh -N looks for
// them there.
func (in Instance) vtyDir() string { return filepath.Join(in.Dir, in.Namespace) }

// Log is the log file of daemon.
func (in Instance) Log(daemon string) string { return filepath.Join(in.Dir, daemon+".log") }

// StateDir is where FRR keeps the pathspace's own state, to remove once
// the daemons have stopped; "" without a namespace.
func (in Instance) StateDir() string {
	if in.Namespace == "" {
		return ""
	}
	return filepath.Join("/var/run/frr", in.Namespace)
}

// WriteConfig writes the daemons' configurations (file name, such as
// "bgpd.conf", to text) into Dir, makes the vty directory, and gives
// these to the frr user, whom the daemons run as.
func (in Instance) WriteConfig(files map[string]string) error {
	vty := in.vtyDir()
	if err := os.MkdirAll(vty, 0o755); err != nil {
		return err
	}
	owned := []string{in.Dir, vty}
	for name, text := range files {
		p := filepath.Join(in.Dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return err
		}
		owned = append(owned, p)
	}
	u, err := user.Lookup("frr")
	if err != nil {
		return fmt.Errorf("FRR is not installed: apt-get install frr (%w)", err)
	}
	return osuser.Give(u, owned...)
}

// Args returns the arguments that run daemon ("zebra", "bgpd", "bfdd"),
// the program Bin/daemon, as part of this instance, reading
// daemon+".conf".
func (in Instance) Args(daemon string) []string {
	args := []string{
		"-N", in.Namespace,
		"--vty_socket", in.vtyDir(),
		"-i", filepath.Join(in.Dir, daemon+".pid"),
		"-z", filepath.Join(in.Dir, "zserv.api"),
		"-f", filepath.Join(in.Dir, daemon+".conf"),
		"-P", "0", // no vty on TCP
		"--log", "file:" + in.Log(daemon),
	}
	if daemon == "bfdd" {
		args = append(args, "--bfdctl", filepath.Join(in.Dir, "bfdd.sock"))
	}
	return args
}

// Vtysh runs vtysh against the instance's daemons with the given arguments
// and returns its output.
func (in Instance) Vtysh(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "vtysh", append([]string{"-N", in.Namespace, "--vty_socket", in.Dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("vtysh %s: %w: %s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out, nil
}

// WaitUp waits until daemon, just started, answers on its vty, which shows
// it is up (bgpd and bfdd also need zebra's socket). It gives up after
// 15 s, or when exited closes; exited may be nil.
func (in Instance) WaitUp(ctx context.Context, daemon string, exited <-chan struct{}) error {
	deadline := time.Now().Add(upTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := in.Vtysh(actx, "-d", daemon, "-c", "show version")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited", daemon)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer after %v: %w", daemon, upTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
