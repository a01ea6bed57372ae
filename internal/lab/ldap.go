package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// The lab's outside dependency: webshop requires a directory (its
// `requires:` entry ldap), which the lab runs only at brussels, as a
// company whose directory lives in one data centre does. Antwerp cannot
// reach it there, so webshop is at risk until `siteflip lab ldap start
// antwerp` starts one at antwerp too (docs/design/risk.md).
const (
	ldapDependency = "ldap"
	// ldapPort is where a site's directory listens on the site's address:
	// not 389, so that the lab runs without root.
	ldapPort = 10389
	// ldapSite is where lab up starts the directory.
	ldapSite = "brussels"
)

// ldapProc is the name of the directory's process in the lab's state.
const ldapProc = "ldap"

// LDAP starts or stops (verb start, stop, status) the lab's directory at
// site: a stand-in that accepts TCP connections on SITE_IP:10389 and
// closes them, which is what webshop's tcp probe asks of it. A power cut
// at the site (lab disaster) kills it with the rest, and lab heal starts
// it again where it ran.
func LDAP(ctx context.Context, o Options, verb, site string) error {
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	if err := st.knownLocation(site); err != nil {
		return err
	}
	switch verb {
	case "start":
		if err := st.startLDAP(ctx, o.Exe, site); err != nil {
			return err
		}
		if !slices.Contains(st.LDAP, site) {
			st.LDAP = append(st.LDAP, site)
		}
		if err := st.save(); err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "the directory (ldap) runs at %s on %s\n", site, st.ldapAddr(site))
		return nil
	case "stop":
		var run []proc
		for _, p := range st.of(site) {
			if p.Name == ldapProc && p.alive() {
				run = append(run, p)
			}
		}
		st.stop(run, 5*time.Second)
		st.forget(run)
		st.LDAP = slices.DeleteFunc(st.LDAP, func(s string) bool { return s == site })
		if err := st.save(); err != nil {
			return err
		}
		if len(run) == 0 {
			fmt.Fprintf(o.Out, "the directory at %s was not running\n", site)
		} else {
			fmt.Fprintf(o.Out, "stopped the directory at %s\n", site)
		}
		return nil
	case "status":
		for _, p := range st.of(site) {
			if p.Name == ldapProc && p.alive() {
				fmt.Fprintf(o.Out, "the directory at %s runs (pid %d) on %s\n", site, p.PID, st.ldapAddr(site))
				return nil
			}
		}
		return fmt.Errorf("the directory at %s: %w", site, ErrNotRunning)
	}
	return fmt.Errorf("lab ldap %q: use start, stop or status", verb)
}

// ldapAddr is where site's directory listens.
func (st *state) ldapAddr(site string) string {
	for _, l := range st.locs() {
		if l.name == site {
			return l.addr(ldapPort)
		}
	}
	return ""
}

// startLDAP starts site's directory unless it runs, and returns once it
// listens.
func (st *state) startLDAP(ctx context.Context, exe, site string) error {
	for _, p := range st.of(site) {
		if p.Name == ldapProc && p.alive() {
			return nil
		}
	}
	addr := st.ldapAddr(site)
	cmd := st.wrap(site, exec.Command(exe, "lab", "ldap", "serve", "--dir", st.Dir, "--site", site))
	p, err := st.start(site, ldapProc, cmd, filepath.Join(st.Dir, site+"-ldap.log"))
	if err != nil {
		return err
	}
	err = listening(ctx, addr, 10*time.Second, func() bool { return !p.alive() })
	if errors.Is(err, errExited) {
		return fmt.Errorf("the directory at %s exited at start; see %s", site, filepath.Join(st.Dir, site+"-ldap.log"))
	}
	if err != nil {
		return fmt.Errorf("the directory at %s %w", site, err)
	}
	return nil
}

// ServeLDAP is the directory's process (lab ldap serve --site SITE): it
// accepts connections on the site's directory address and closes them,
// until ctx ends.
func ServeLDAP(ctx context.Context, o Options, site string) error {
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	if err := st.knownLocation(site); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", st.ldapAddr(site))
	if err != nil {
		return fmt.Errorf("the directory at %s: %w", site, err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	fmt.Fprintf(o.Out, "directory stand-in of %s listening on %s\n", site, ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		conn.Close()
	}
}
