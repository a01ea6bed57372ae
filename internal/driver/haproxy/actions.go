package haproxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// pollInterval is how often Enable reads the state back while it waits for
// a server to come up. One read costs well under a millisecond.
const pollInterval = 10 * time.Millisecond

// State reads the state of the site's server with `show servers state
// BACKEND`. It changes nothing.
func State(ctx context.Context, s *Settings) (ServerState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	return state(ctx, s)
}

func state(ctx context.Context, s *Settings) (ServerState, error) {
	cmd := "show servers state " + s.Backend
	answer, err := command(ctx, s, cmd)
	if err != nil {
		return ServerState{}, err
	}
	if !strings.HasPrefix(answer, serversStateVersion+"\n") {
		return ServerState{}, answerError(s, cmd, answer)
	}
	states, err := parseServersState(answer)
	if err != nil {
		return ServerState{}, fmt.Errorf("haproxy %s: %s: %w: %w", s.RuntimeAPI, cmd, ErrRejected, err)
	}
	return locate(s, cmd, states)
}

// locate finds the site's server in the answer to cmd, or says what is
// missing.
func locate(s *Settings, cmd string, states []ServerState) (ServerState, error) {
	var servers []string
	for _, st := range states {
		if st.Backend == s.Backend {
			if st.Server == s.Server {
				return st, nil
			}
			servers = append(servers, st.Server)
		}
	}
	if servers == nil && cmd == "show servers state" {
		return ServerState{}, fmt.Errorf("haproxy %s: %s: %w: HAProxy has no backend %s with servers: set backend to a backend of haproxy.cfg",
			s.RuntimeAPI, cmd, ErrNoBackend, s.Backend)
	}
	return ServerState{}, fmt.Errorf("haproxy %s: %s: %w: backend %s has no server %s, only [%s]: set server to one of them (default: the site name) or add the server to haproxy.cfg",
		s.RuntimeAPI, cmd, ErrNoServer, s.Backend, s.Server, strings.Join(servers, " "))
}

// Enable makes the site's server take traffic: `set server BACKEND/SERVER
// state ready`, which takes it out of maintenance or drain (including a
// server marked `disabled` in haproxy.cfg). It then reads the state back
// until the server is serving — ready, up and with a weight above 0 — and
// fails with ErrNotApplied when it is not within the settings' timeout or
// ctx, whichever ends first; the error then carries HAProxy's status and
// last health check. Enable returns the last state it read. Enabling a
// server that is serving changes nothing.
//
// HAProxy counts a health-checked server that leaves maintenance as up at
// once, before any check has run, even when the server is dead. So when
// the server has health checks and was in maintenance, Enable also waits
// for a check to pass after the change. HAProxy runs it when the server's
// check timer next fires, which keeps its phase through maintenance: after
// up to one `inter` (`fastinter` does not shorten it), half of it on
// average. The wait delays Enable's answer, not the traffic: HAProxy sends
// requests to the server from the moment it is ready. With `fall 1` a
// passed check leaves no trace that HAProxy reports, and Enable does not
// wait.
func Enable(ctx context.Context, s *Settings) (ServerState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	cmd := "set server " + s.Backend + "/" + s.Server + " state ready"

	st, err := state(ctx, s)
	if err != nil {
		return st, err
	}
	waitCheck := st.Admin.Maint() && st.Checked
	if !st.Admin.Ready() {
		if err := set(ctx, s, "ready"); err != nil {
			return st, err
		}
	}
	rise := -1      // the check's rise, once known
	var info string // the last word of HAProxy on why it is down
	for {
		next, err := state(ctx, s)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) { // the wait ran out during a read
				return st, notServing(s, cmd, st, waitCheck, info)
			}
			return st, err
		}
		st = next
		if st.Serving() && waitCheck && rise < 0 {
			rise = checkRise(stat(ctx, s, st))
			if rise < 0 {
				waitCheck = false // no rise to compare with: trust HAProxy
			}
		}
		if st.Serving() && (!waitCheck || st.CheckHealth > rise) {
			return st, nil
		}
		if why := hopeless(s, st); why != "" {
			return st, fmt.Errorf("haproxy %s: %s: %w: %s; %s", s.RuntimeAPI, cmd, ErrNotApplied, st, why)
		}
		if !st.Serving() {
			// A read cut short by the deadline keeps the last one.
			if i := checkInfo(stat(ctx, s, st)); i != "" {
				info = i
			}
		}
		select {
		case <-ctx.Done():
			return st, notServing(s, cmd, st, waitCheck, info)
		case <-time.After(pollInterval):
		}
	}
}

// checkRise returns the rise of the server's health check from its row of
// `show stat`, or -1 when a passed check cannot be told from the counter:
// with fall 1 the counter's top is rise itself.
func checkRise(row map[string]string) int {
	rise, err1 := strconv.Atoi(row["check_rise"])
	fall, err2 := strconv.Atoi(row["check_fall"])
	if err1 != nil || err2 != nil || fall <= 1 {
		return -1
	}
	return rise
}

// hopeless says why a server that was set ready cannot serve until someone
// changes something else, or "" when waiting may help.
func hopeless(s *Settings, st ServerState) string {
	name := s.Backend + "/" + s.Server
	switch {
	case st.Admin&(AdminInheritedMaint|AdminInheritedDrain) != 0:
		return fmt.Sprintf("%s tracks a server that is in maintenance or draining: make the tracked server ready first (see its `track` in haproxy.cfg)", name)
	case st.Admin&(AdminForcedMaint|AdminForcedDrain) != 0:
		return "HAProxy kept it out of service after accepting the command: see HAProxy's log"
	case st.Weight == 0 && st.InitialWeight == 0:
		return "its weight is 0 in haproxy.cfg, so it gets no new traffic: give it a weight above 0 there"
	case st.Weight == 0:
		return fmt.Sprintf("its weight is 0, so it gets no new traffic: restore it with `set weight %s %d` (its configured weight)", name, st.InitialWeight)
	}
	return ""
}

// notServing is the error of an Enable whose server did not come up in time.
func notServing(s *Settings, cmd string, st ServerState, waitCheck bool, info string) error {
	var why string
	if st.Serving() && waitCheck {
		why = "no health check passed within the timeout (" + s.timeout().String() + ") after it left maintenance: HAProxy checks it once per `inter`, so make timeout longer than the server's `inter` in haproxy.cfg"
	} else {
		why = "it did not come up within the timeout (" + s.timeout().String() + ")"
		if info != "" {
			why += "; " + info
		}
		why += ": check that the server answers HAProxy's health check, or raise timeout"
	}
	return fmt.Errorf("haproxy %s: %s: %w: %s; %s", s.RuntimeAPI, cmd, ErrNotApplied, st, why)
}

// Disable puts the site's server in maintenance: `set server BACKEND/SERVER
// state maint`. HAProxy then sends it no new request or connection at all;
// the requests it is serving run to completion. Disable reads the state
// back and fails with ErrNotApplied unless the server is in forced
// maintenance. Disabling a server in forced maintenance changes nothing.
//
// Disable does not drain. A draining server still gets the clients that
// persistence (a cookie, a stick table) ties to it, so after a failover
// those clients would keep reaching the site that was left; and a drain has
// no end that HAProxy reports, while a step of a plan needs one.
// Maintenance moves the next request of every client to the servers still
// ready. In TCP mode, connections already established to the server stay
// open until either side closes them.
func Disable(ctx context.Context, s *Settings) (ServerState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	cmd := "set server " + s.Backend + "/" + s.Server + " state maint"

	st, err := state(ctx, s)
	if err != nil {
		return st, err
	}
	if st.Admin&AdminForcedMaint != 0 {
		return st, nil
	}
	if err := set(ctx, s, "maint"); err != nil {
		return st, err
	}
	next, err := state(ctx, s)
	if err != nil {
		return st, err
	}
	if next.Admin&AdminForcedMaint == 0 {
		return next, fmt.Errorf("haproxy %s: %s: %w: %s after HAProxy accepted the command; see HAProxy's log", s.RuntimeAPI, cmd, ErrNotApplied, next)
	}
	return next, nil
}

// SaveState writes HAProxy's server state to the state file, so that a
// reload of HAProxy configured with `server-state-file` and
// `load-server-state-from-file` keeps what Enable and Disable changed. It
// dumps `show servers state` (every backend, or only the site's backend
// when state_scope is local), checks that the dump is complete and holds the
// site's server, writes it to a temporary file next to the state file and
// renames that over the state file, so that HAProxy never reads half a
// file. It then reads the file back, and returns the site's server as
// saved.
//
// Call it after every change, on the host where HAProxy runs: the state
// file is only as recent as the last SaveState.
func SaveState(ctx context.Context, s *Settings) (ServerState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	cmd := "show servers state"
	if s.StateScope == ScopeLocal {
		cmd += " " + s.Backend
	}

	answer, err := command(ctx, s, cmd)
	if err != nil {
		return ServerState{}, err
	}
	if !strings.HasPrefix(answer, serversStateVersion+"\n") {
		return ServerState{}, answerError(s, cmd, answer)
	}
	// HAProxy ends every answer with an empty line: without it the dump
	// was cut short.
	if !strings.HasSuffix(answer, "\n\n") {
		return ServerState{}, fmt.Errorf("haproxy %s: %s: %w: the answer ends without its closing empty line, so it is incomplete; try again", s.RuntimeAPI, cmd, ErrUnreachable)
	}
	states, err := parseServersState(answer)
	if err != nil {
		return ServerState{}, fmt.Errorf("haproxy %s: %s: %w: %w", s.RuntimeAPI, cmd, ErrRejected, err)
	}
	st, err := locate(s, cmd, states)
	if err != nil {
		return ServerState{}, fmt.Errorf("%w; %s is left as it was", err, s.StateFile)
	}
	if err := ctx.Err(); err != nil {
		return ServerState{}, fmt.Errorf("haproxy %s: save server state to %s: %w", s.RuntimeAPI, s.StateFile, err)
	}
	if err := writeFileAtomic(s.StateFile, []byte(answer)); err != nil {
		return ServerState{}, fmt.Errorf("haproxy %s: save server state to %s: %w; make its folder writable by siteflip's user, or set state_file to the server-state-file of haproxy.cfg", s.RuntimeAPI, s.StateFile, err)
	}

	b, err := os.ReadFile(s.StateFile)
	if err != nil {
		return st, fmt.Errorf("haproxy %s: read back server state %s: %w", s.RuntimeAPI, s.StateFile, err)
	}
	all, err := parseServersState(string(b))
	if err == nil {
		if got, found := find(all, s.Backend, s.Server); !found {
			err = fmt.Errorf("it lacks %s/%s: another process writes the file too", s.Backend, s.Server)
		} else if got.Admin != st.Admin {
			err = fmt.Errorf("it holds %s instead of %s: another process writes the file too", got, st)
		}
	}
	if err != nil {
		return st, fmt.Errorf("haproxy %s: read back server state %s: %w: %w", s.RuntimeAPI, s.StateFile, ErrNotApplied, err)
	}
	return st, nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// folder, synced, then renamed over path, and the folder synced. It keeps
// the permissions of the file it replaces (0644 for a new one).
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: the file is in place either way
		d.Close()
	}
	return nil
}
