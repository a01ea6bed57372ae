package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// An instance that is not on the agent's machine cannot be stopped or
// killed by it: it is fenced by Settings.FenceCommand, whose success is
// verified from here.

// resolveTimeout bounds the name lookup of IsLocal.
const resolveTimeout = 2 * time.Second

// IsLocal says whether the agent on this machine manages the instance s
// describes: s.DataDir is set and holds a cluster (PG_VERSION) on this
// host, and s.Host is a unix socket directory or an address of this
// machine (a name is resolved; every address it has must be local; an
// address in a loopback network counts, as Linux answers all of
// 127.0.0.0/8). When it is not local, reason says why.
func IsLocal(s Settings) (local bool, reason string) {
	if s.DataDir == "" {
		return false, "data_dir is not set"
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "PG_VERSION")); err != nil {
		return false, fmt.Sprintf("data_dir %s holds no cluster on this host (%v)", s.DataDir, err)
	}
	if strings.HasPrefix(s.Host, "/") {
		return true, ""
	}
	if s.Host == "" {
		return false, "host is not set"
	}
	var ips []net.IP
	if ip := net.ParseIP(strings.Trim(s.Host, "[]")); ip != nil {
		ips = []net.IP{ip}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, s.Host)
		if err != nil {
			return false, fmt.Sprintf("host %s cannot be resolved: %v", s.Host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Sprintf("cannot list this machine's addresses: %v", err)
	}
	for _, ip := range ips {
		if !localIP(ip, ifAddrs) {
			return false, fmt.Sprintf("host %s (%s) is not an address of this machine", s.Host, ip)
		}
	}
	return true, ""
}

// localIP says whether ip is one of ifAddrs, or in the network of a
// loopback one.
func localIP(ip net.IP, ifAddrs []net.Addr) bool {
	for _, a := range ifAddrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if n.IP.Equal(ip) || (n.IP.IsLoopback() && n.Contains(ip)) {
			return true
		}
	}
	return false
}

// fenceDialTimeout bounds one connection attempt of RunFenceCommand's
// verification: a fenced host may drop packets rather than refuse.
const fenceDialTimeout = 2 * time.Second

// defaultFenceTimeout bounds RunFenceCommand when ctx has no deadline.
const defaultFenceTimeout = time.Minute

// RunFenceCommand fences the instance s describes with s.FenceCommand, run
// as the calling user without a shell, from "/", with an environment
// free of PG* variables, and then verifies the fence from here, until it
// holds or ctx ends: a TCP connection to host:port (or the unix socket) is
// refused, times out or finds no route to the host — nothing answers
// there — or it succeeds and the server says pg_is_in_recovery(): it
// accepts no writes. A command that fails is an error with the end of its
// output, and so is a fence that could not be verified: it says what was
// seen. Without a deadline in ctx one minute applies.
func RunFenceCommand(ctx context.Context, s Settings) error {
	where := fmt.Sprintf("fence postgres at %s with fence_command", s.addr())
	if len(s.FenceCommand) == 0 {
		return fmt.Errorf("%s: fence_command is not set: set it to a command that stops the server or makes it read-only", where)
	}
	if !filepath.IsAbs(s.FenceCommand[0]) {
		return fmt.Errorf("%s: program %q is not an absolute path: give its full path", where, s.FenceCommand[0])
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultFenceTimeout)
		defer cancel()
	}
	if err := run(ctx, nil, "run "+strings.Join(s.FenceCommand, " "), nil, s.FenceCommand[0], s.FenceCommand[1:]...); err != nil {
		return fmt.Errorf("%s: %w; the server may still accept writes", where, err)
	}
	var last string
	for {
		ok, seen := verifyFenced(ctx, s)
		if ok {
			return nil
		}
		if last == "" || ctx.Err() == nil {
			last = seen // not one cut short by ctx, if there was another
		}
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			return fmt.Errorf("%s: the command succeeded, but the fence was not verified (%v): %s; the server may still accept writes: stop it by other means", where, ctx.Err(), last)
		}
	}
}

// verifyFenced looks once at whether the instance accepts writes; seen
// says what it found when it cannot tell that it does not.
func verifyFenced(ctx context.Context, s Settings) (fenced bool, seen string) {
	network, addr := "tcp", s.addr()
	if strings.HasPrefix(s.Host, "/") {
		network, addr = "unix", filepath.Join(s.Host, ".s.PGSQL."+strconv.Itoa(s.Port))
	}
	dctx, cancel := context.WithTimeout(ctx, fenceDialTimeout)
	c, err := (&net.Dialer{}).DialContext(dctx, network, addr)
	cancel()
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
			network == "unix" && errors.Is(err, syscall.ENOENT):
			return true, ""
		case ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout():
			return true, "" // the dial's own timeout, not ctx's
		}
		return false, fmt.Sprintf("connecting to %s failed in a way that does not show the server is down: %v", addr, err)
	}
	c.Close()
	conn, err := connectAction(ctx, s, "siteflip-fence")
	if err != nil {
		return false, fmt.Sprintf("%s accepts connections, and asking the server whether it is in recovery failed: %v", addr, err)
	}
	defer closeConn(conn)
	var recovery bool
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovery); err != nil {
		return false, fmt.Sprintf("%s accepts connections, and asking the server whether it is in recovery failed: %v", addr, err)
	}
	if !recovery {
		return false, fmt.Sprintf("the server at %s still runs as a primary (pg_is_in_recovery() is false)", addr)
	}
	return true, ""
}
