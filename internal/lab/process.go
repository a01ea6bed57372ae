package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// state is what the lab records in DIR/lab.json: the processes it started,
// so that disaster, heal and down touch those and nothing else.
type state struct {
	Dir       string    `json:"dir"`
	CreatedAt time.Time `json:"created_at"`
	Processes []proc    `json:"processes"`
	AgentEnv  []string  `json:"agent_env,omitempty"`
	// SiteEnv is added to one location's agent only.
	SiteEnv map[string][]string `json:"site_env,omitempty"`
	// Net is set when the locations live in network namespaces.
	Net *netState `json:"net,omitempty"`
	// Stack is set when the lab runs the web stack (Options.Stack).
	Stack *stackState `json:"stack,omitempty"`
	// Sites is Options.Sites: 3 for a lab with liege, else 0 or 2.
	Sites int `json:"sites,omitempty"`
	// PGGroups is the number of the scale lab's PostgreSQL groups, whose
	// servers listen on ports of their own (scaleDB).
	PGGroups int `json:"pg_groups,omitempty"`
	// LDAP lists the sites where the lab runs its directory (lab ldap):
	// lab heal starts it again there.
	LDAP []string `json:"ldap,omitempty"`

	// mu guards Processes and the file while databases start side by
	// side (startDatabases).
	mu sync.Mutex
}

// proc is one process the lab started, in a session of its own so that its
// whole process group (a postgres server and its backends) can be killed
// at once.
type proc struct {
	Site string `json:"site,omitempty"` // "" for the demo writer, which is a client
	Name string `json:"name"`           // agent, postgres or writer
	PID  int    `json:"pid"`
	// Start is the process's start time in clock ticks since boot
	// (/proc/PID/stat field 22): with the PID it names one process for
	// good, so a recycled PID is never taken for ours.
	Start uint64 `json:"start"`
}

const stateFile = "lab.json"

func loadState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no lab in %s (no %s): start one with `siteflip lab up --dir %s`", dir, stateFile, dir)
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

func (st *state) save() error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(st.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(st.Dir, stateFile))
}

// running returns the recorded processes that are still alive and still
// ours: a recycled PID belongs to somebody else and must not be signalled.
func (st *state) running() []proc {
	var out []proc
	for _, p := range st.Processes {
		if p.alive() {
			out = append(out, p)
		}
	}
	return out
}

// alive says whether the process runs (not a zombie) and is the one the lab
// started: same PID and same start time.
func (p proc) alive() bool {
	state, start, err := procStat(p.PID)
	return err == nil && state != 'Z' && start == p.Start
}

// procStat reads a process's state and start time from /proc/PID/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields follow the command name in parentheses, which may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64) // field 22 overall
	return fields[0][0], start, err
}

// of returns the recorded processes of a site.
func (st *state) of(site string) []proc {
	var out []proc
	for _, p := range st.Processes {
		if p.Site == site {
			out = append(out, p)
		}
	}
	return out
}

// forget drops the records of the given processes.
func (st *state) forget(ps []proc) {
	keep := st.Processes[:0]
	for _, p := range st.Processes {
		drop := false
		for _, q := range ps {
			drop = drop || q.PID == p.PID
		}
		if !drop {
			keep = append(keep, p)
		}
	}
	st.Processes = keep
}

// start starts cmd detached from the lab command (a session of its own,
// output to logPath unless cmd already has an output) and records it.
func (st *state) start(site, name string, cmd *exec.Cmd, logPath string) (proc, error) {
	if cmd.Stdout == nil && logPath != "" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return proc{}, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		return proc{}, fmt.Errorf("start %s of %s: %w", name, orLab(site), err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	p, err := st.record(site, name, cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		return proc{}, fmt.Errorf("start %s of %s: %w", name, orLab(site), err)
	}
	// Reap it if it dies while this command still runs; after that, init does.
	go cmd.Wait()
	return p, st.save()
}

// record records a process the lab started, by its PID and start time;
// the caller saves the state.
func (st *state) record(site, name string, pid int) (proc, error) {
	p := proc{Site: site, Name: name, PID: pid}
	var err error
	if _, p.Start, err = procStat(p.PID); err != nil {
		return proc{}, err
	}
	st.Processes = append(st.Processes, p)
	return p, nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kill kills ps outright: each process group, and for a postgres server
// every process it started (they each run in a session of their own, so
// its process group does not hold them).
func (st *state) kill(ps []proc) {
	for _, p := range ps {
		if !p.alive() {
			continue
		}
		if p.Name == "postgres" {
			_ = postgres.KillServer(p.PID)
		} else {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	}
}

// cut kills ps at once, as a power cut would: each process group with
// SIGKILL, and for a postgres server its postmaster and every process it
// started, found in one pass over /proc. kill alone goes through the
// servers one by one, a pass over /proc each: with dozens of servers
// that takes seconds, during which the site's agent, if it still runs,
// restarts the servers it sees die, and the surviving sites see a lost
// site's databases answer. kill after cut finds what it missed.
func (st *state) cut(ps []proc) {
	children := childrenByParent()
	var servers []int
	for _, p := range ps {
		switch {
		case !p.alive():
		case p.Name == "postgres":
			servers = append(servers, p.PID)
		default:
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	}
	for _, pid := range servers {
		_ = syscall.Kill(pid, syscall.SIGKILL) // no more children
	}
	for len(servers) > 0 {
		pid := servers[0]
		servers = append(servers[1:], children[pid]...)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// childrenByParent maps each process's parent to its children, from
// /proc.
func childrenByParent() map[int][]int {
	out := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				out[ppid] = append(out[ppid], pid)
			}
		}
	}
	return out
}

// stop asks ps to stop (postgres: fast shutdown), waits up to grace, and
// kills what is left.
func (st *state) stop(ps []proc, grace time.Duration) {
	for _, p := range ps {
		sig := syscall.SIGTERM
		if p.Name == "postgres" {
			sig = syscall.SIGINT // fast shutdown; the postmaster stops its backends
		}
		if p.alive() {
			_ = syscall.Kill(p.PID, sig)
		}
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		left := false
		for _, p := range ps {
			left = left || p.alive()
		}
		if !left {
			return
		}
		time.Sleep(10 * time.Millisecond) // an app's stop is in a switchover's gap
	}
	st.kill(ps)
	time.Sleep(200 * time.Millisecond)
}

func orLab(site string) string {
	if site == "" {
		return "the lab"
	}
	return site
}

func names(ps []proc) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s (pid %d)", path.Join(orLab(p.Site), p.Name), p.PID))
	}
	return strings.Join(out, ", ")
}

// postmasters returns the PostgreSQL servers running on the site's data
// directories (webshop's SITE/pg/data, the scale lab's SITE/pg-NNNN/data),
// found through their postmaster.pid: after a failover or a reprotect the
// agents restart servers themselves, and the lab must still find them to
// cut their power. It reads no topology: down must stop them even when
// the lab's siteflip.yaml is gone or broken.
func (st *state) postmasters(site string) []proc {
	dirs, _ := filepath.Glob(filepath.Join(st.Dir, site, "pg*", "data"))
	var out []proc
	for _, dir := range dirs {
		pid, ok := postgres.Postmaster(dir)
		if !ok {
			continue
		}
		if _, start, err := procStat(pid); err == nil {
			out = append(out, proc{Site: site, Name: "postgres", PID: pid, Start: start})
		}
	}
	return out
}

// union adds to ps the processes of more it does not hold yet.
func union(ps, more []proc) []proc {
	out := append([]proc(nil), ps...)
	for _, m := range more {
		dup := false
		for _, p := range ps {
			dup = dup || p.PID == m.PID
		}
		if !dup {
			out = append(out, m)
		}
	}
	return out
}

// watchdogs returns the site's agent's watchdog, found through the PID
// file the agent writes: it runs in a process group of its own, so that a
// crash of the agent leaves it to fence, and a power cut must kill it too.
func (st *state) watchdogs(site string) []proc {
	pid, err := watchdog.ReadPID(filepath.Join(st.Dir, site))
	if err != nil || pid <= 1 {
		return nil
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte("watchdog")) {
		return nil
	}
	_, start, err := procStat(pid)
	if err != nil {
		return nil
	}
	return []proc{{Site: site, Name: "watchdog", PID: pid, Start: start}}
}
