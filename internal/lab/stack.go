package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/driver/haproxy"
)

// The lab's web stack (Options.Stack) puts webshop's clients behind a
// whole stack instead of a bare database: per site a storage "array" (a
// file holding its mode, turned by a script resource), the app (`lab
// app`, a service resource run at the active site only, writing to its
// own site's database), and, when HAProxy is installed, one HAProxy in
// front of the apps whose server per site the haproxy resource switches.
// A web writer orders through it all. Every command the topology names is
// this binary, as an argument list.

// Resources of the stack in webshop, and where it listens.
const (
	storageResource = "storage"
	appResource     = "app"
	proxyResource   = "lb"
	proxyBackend    = "webshop"
	appPort         = 8080
	proxyPort       = 8080
	// proxyIP is the proxy's address, on the loopback of the root
	// namespace, where the clients run, in both kinds of lab.
	proxyIP = "127.0.4.1"
)

// stackState is the web stack of a lab, in lab.json.
type stackState struct {
	// Apps is, per site, the host:port its app listens on.
	Apps map[string]string `json:"apps"`
	// Proxy is the host:port HAProxy listens on; "" without HAProxy.
	Proxy string `json:"proxy,omitempty"`
	// Approval adds an approval, storage-ready, between the storage's
	// promotion and the app's (Options.Approval).
	Approval bool `json:"approval,omitempty"`
}

// approvalResource is the approval of Options.Approval.
const approvalResource = "storage-ready"

func newStackState(locs []location, proxy bool) *stackState {
	s := &stackState{Apps: map[string]string{}}
	for _, l := range locs {
		if l.postgres {
			s.Apps[l.name] = l.addr(appPort)
		}
	}
	if proxy {
		s.Proxy = net.JoinHostPort(proxyIP, strconv.Itoa(proxyPort))
	}
	return s
}

// StackURLs are where the clients of the lab in dir order over HTTP: its
// proxy, or without one every site's app; none without a web stack.
func StackURLs(dir string) ([]string, error) {
	st, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	if st.Stack == nil {
		return nil, nil
	}
	return st.Stack.urls(st.locs()), nil
}

// urls are where the web writer orders: the proxy, or without one every
// site's app in the lab's order, taking whichever is healthy.
func (s *stackState) urls(locs []location) []string {
	if s.Proxy != "" {
		return []string{"http://" + s.Proxy}
	}
	var out []string
	for _, l := range locs {
		if a, ok := s.Apps[l.name]; ok {
			out = append(out, "http://"+a)
		}
	}
	return out
}

// addresses are the stack's addresses to find free before up: the apps'
// (on the loopback lab; a namespaced lab's are in fresh namespaces) and
// the proxy's.
func (s *stackState) addresses(loopback bool) []string {
	var out []string
	if loopback {
		for _, l := range locations { // the stack runs in two-site labs only
			if a, ok := s.Apps[l.name]; ok {
				out = append(out, a)
			}
		}
	}
	if s.Proxy != "" {
		out = append(out, s.Proxy)
	}
	return out
}

// appAddr is where the app of site listens.
func (st *state) appAddr(site string) (string, error) {
	if err := st.knownLocation(site); err != nil {
		return "", err
	}
	if st.Stack == nil {
		return "", fmt.Errorf("the lab in %s has no web stack: start it with `siteflip lab up --stack`", st.Dir)
	}
	a, ok := st.Stack.Apps[site]
	if !ok {
		return "", fmt.Errorf("%s runs no app in the lab: it is not a site", site)
	}
	return a, nil
}

// Paths of the stack's files in the lab directory.
func appPIDPath(dir, site string) string { return filepath.Join(dir, site, "app.pid") }
func appLogPath(dir, site string) string { return filepath.Join(dir, site, "app.log") }
func haproxyDir(dir string) string       { return filepath.Join(dir, "haproxy") }
func haproxySocket(dir string) string    { return filepath.Join(haproxyDir(dir), "admin.sock") }
func haproxyStateFile(dir string) string { return filepath.Join(haproxyDir(dir), "server-state") }

// stackYAML writes webshop's stack resources: the storage script, the app
// service and, with a proxy, the haproxy resource.
func stackYAML(b *strings.Builder, dir, exe string, locs []location, s *stackState) {
	lab := func(args ...string) string { return yamlList(append([]string{exe, "lab"}, args...)...) }
	fmt.Fprintf(b, `      - name: %s                # the storage "array": %s/SITE/storage.mode
        type: script
        priority: 1
        sites:
`, storageResource, dir)
	for _, l := range locs {
		if !l.postgres {
			continue
		}
		mode := func(m string) string { return lab("storage", "--dir", dir, "--site", l.name, m) }
		fmt.Fprintf(b, `          %s:
            fence: %s
            promote: %s
            rejoin: %s
            unfence: %s
            timeout: 30s
`, l.name, mode(StorageReadOnly), mode(StorageReadWrite), mode(StorageReadOnly), mode(StorageReadWrite))
	}
	appDeps := storageResource
	if s.Approval {
		appDeps = approvalResource
		fmt.Fprintf(b, `      - name: %s          # a person confirms the storage before the app starts
        type: approval
        priority: 1
        depends_on: [%s]
        sites:
`, approvalResource, storageResource)
		for _, l := range locs {
			if l.postgres {
				fmt.Fprintf(b, "          %s: {message: \"storage at %s read-write?\", timeout: 10m}\n", l.name, l.name)
			}
		}
	}
	fmt.Fprintf(b, `      - name: %s                    # the web app, run at the active site only
        type: service
        priority: 2
        depends_on: [%s, %s]
        sites:
`, appResource, demoResource, appDeps)
	for _, l := range locs {
		if !l.postgres {
			continue
		}
		service := func(verb string) string {
			return lab("service", verb, "--dir", dir, "--site", l.name, appResource)
		}
		fmt.Fprintf(b, `          %s:
            start: %s
            stop: %s
            status: %s
            health: {http: {url: "http://%s/healthz", body: "^ok %s$"}, timeout: 1s}
            start_timeout: 20s
            stop_timeout: 15s
`, l.name, service("start"), service("stop"), service("status"), s.Apps[l.name], l.name)
	}
	if s.Proxy == "" {
		return
	}
	fmt.Fprintf(b, `      - name: %s                     # HAProxy on %s: the active site's server ready
        type: haproxy
        priority: 2
        depends_on: [%s]
        sites:
`, proxyResource, s.Proxy, appResource)
	for _, l := range locs {
		if l.postgres {
			fmt.Fprintf(b, "          %s: {runtime_api: %q, backend: %s, server: %s, state_file: %q}\n",
				l.name, haproxySocket(dir), proxyBackend, l.name, haproxyStateFile(dir))
		}
	}
}

// yamlList writes args as a YAML flow list of double-quoted strings.
func yamlList(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// haproxyConfig is the lab's haproxy.cfg: one frontend on the proxy's
// address, one backend with a health-checked server per site's app, the
// active site's ready and the others `disabled`, as a standby site's
// server is configured.
func haproxyConfig(dir string, locs []location, s *stackState, active string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# HAProxy in front of the lab's apps, written by "siteflip lab up".
global
    stats socket %s level admin
    server-state-file %s

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    load-server-state-from-file global

frontend %[3]s
    bind %[4]s
    default_backend %[3]s

backend %[3]s
    option httpchk GET /healthz
    # A refused connection (the old site's app just stopped) is tried
    # again at once on the other server rather than held.
    retries 3
    option redispatch 1
`, haproxySocket(dir), haproxyStateFile(dir), proxyBackend, s.Proxy)
	for _, l := range locs {
		if a, ok := s.Apps[l.name]; ok {
			disabled := ""
			if l.name != active {
				disabled = " disabled"
			}
			fmt.Fprintf(&b, "    server %s %s check inter 250ms%s\n", l.name, a, disabled)
		}
	}
	return b.String()
}

// startStack sets the sites' storage (read-write at the active site,
// read-only elsewhere), starts the app at the active site the way its
// agent will start it, and HAProxy in front when there is one (proxyBin).
func (st *state) startStack(ctx context.Context, o Options, active, proxyBin string) error {
	for site := range st.Stack.Apps {
		mode := StorageReadOnly
		if site == active {
			mode = StorageReadWrite
		}
		if err := os.MkdirAll(filepath.Join(st.Dir, site), 0o755); err != nil {
			return err
		}
		if err := writeStorage(st.Dir, site, mode); err != nil {
			return err
		}
	}
	cmd := st.wrap(active, exec.CommandContext(ctx, o.Exe, "lab", "service", "start", "--dir", st.Dir, "--site", active, appResource))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start the app at %s: %w\n%s", active, err, out)
	}
	fmt.Fprintf(o.Out, "started the app of %s at %s (http://%s); storage read-write at %s, read-only elsewhere\n", demoGroup, active, st.Stack.Apps[active], active)
	if proxyBin == "" {
		fmt.Fprintln(o.Out, "no HAProxy here (apt-get install haproxy): the stack has no proxy, and the web writer orders at whichever app is healthy")
		return nil
	}
	if err := os.MkdirAll(haproxyDir(st.Dir), 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(haproxyDir(st.Dir), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(st.Dir, st.locs(), st.Stack, active)), 0o644); err != nil {
		return err
	}
	// A session of its own, as every process of the lab: it outlives up.
	p := &haproxy.Proc{Bin: proxyBin, Config: cfg, Socket: haproxySocket(st.Dir), Log: filepath.Join(haproxyDir(st.Dir), "haproxy.log"),
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := p.Start(ctx, 0); err != nil {
		return err
	}
	if _, err := st.record("", "haproxy", p.PID()); err != nil {
		p.Stop()
		return err
	}
	if err := st.save(); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "started HAProxy on http://%s in front of the apps (backend %s, server %s ready)\n", st.Stack.Proxy, proxyBackend, active)
	return nil
}

// ErrNotRunning: the service that `lab service status` asks about does
// not run.
var ErrNotRunning = errors.New("not running")

// Service starts, stops or asks about (verb start, stop, status) the
// lab's service name at site, as the commands of its service resource
// do. start returns once the service listens, and runs it detached, in a
// session of its own with its output in DIR/SITE/app.log; stop stops it
// (SIGTERM, then SIGKILL) and waits for it; status returns ErrNotRunning
// when it does not run. Each is idempotent. The PID file DIR/SITE/app.pid
// names the process, with its start time.
func Service(ctx context.Context, o Options, verb, site, name string) error {
	if name != appResource {
		return fmt.Errorf("the lab runs one service, %s, not %q", appResource, name)
	}
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	addr, err := st.appAddr(site)
	if err != nil {
		return err
	}
	switch verb {
	case "start":
		return st.startApp(ctx, o, site, addr)
	case "stop":
		return st.stopApp(o, site)
	case "status":
		if p, ok := st.app(site); ok {
			fmt.Fprintf(o.Out, "the app at %s runs (pid %d)\n", site, p.PID)
			return nil
		}
		return fmt.Errorf("the app at %s: %w", site, ErrNotRunning)
	}
	return fmt.Errorf("lab service %q: use start, stop or status", verb)
}

// appStartWait bounds how long a start waits for the app to listen.
const appStartWait = 10 * time.Second

func (st *state) startApp(ctx context.Context, o Options, site, addr string) error {
	if p, ok := st.app(site); ok {
		fmt.Fprintf(o.Out, "the app at %s runs already (pid %d)\n", site, p.PID)
		return nil
	}
	logFile, err := os.OpenFile(appLogPath(st.Dir, site), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(o.Exe, "lab", "app", "--dir", st.Dir, "--site", site)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the app at %s: %w", site, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := proc{Site: site, Name: appResource, PID: cmd.Process.Pid}
	if _, p.Start, err = procStat(p.PID); err == nil {
		err = writePIDFile(appPIDPath(st.Dir, site), p)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("start the app at %s: %w", site, err)
	}
	var werr error
	err = listening(ctx, addr, appStartWait, func() bool {
		select {
		case werr = <-exited:
			return true
		default:
			return false
		}
	})
	switch {
	case err == nil:
		fmt.Fprintf(o.Out, "started the app at %s (pid %d) on http://%s; log: %s\n", site, p.PID, addr, appLogPath(st.Dir, site))
		return nil
	case errors.Is(err, errExited):
		os.Remove(appPIDPath(st.Dir, site))
		log, _ := os.ReadFile(appLogPath(st.Dir, site))
		return fmt.Errorf("the app at %s exited at start (%v); %s ends:\n%s", site, werr, appLogPath(st.Dir, site), tail(string(log), 10))
	}
	st.kill([]proc{p})
	os.Remove(appPIDPath(st.Dir, site))
	return fmt.Errorf("the app at %s %w; see %s", site, err, appLogPath(st.Dir, site))
}

// errExited: a process exited before it listened.
var errExited = errors.New("exited before it listened")

// listening returns once addr accepts a TCP connection: nil; errExited as
// soon as exited says the process that should listen there is gone; or,
// after timeout, an error that says it did not listen and why.
func listening(ctx context.Context, addr string, timeout time.Duration, exited func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			return nil
		}
		if exited() {
			return errExited
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("did not listen on %s within %s (%v)", addr, timeout, err)
		case <-tick.C:
		}
	}
}

func (st *state) stopApp(o Options, site string) error {
	p, ok := st.app(site)
	if !ok {
		os.Remove(appPIDPath(st.Dir, site))
		fmt.Fprintf(o.Out, "the app at %s is not running\n", site)
		return nil
	}
	st.stop([]proc{p}, 5*time.Second)
	if p.alive() {
		return fmt.Errorf("the app at %s (pid %d) did not stop, not even killed", site, p.PID)
	}
	os.Remove(appPIDPath(st.Dir, site))
	fmt.Fprintf(o.Out, "stopped the app at %s (pid %d)\n", site, p.PID)
	return nil
}

// app returns the app running at site, found through its PID file.
func (st *state) app(site string) (proc, bool) {
	b, err := os.ReadFile(appPIDPath(st.Dir, site))
	if err != nil {
		return proc{}, false
	}
	var p proc
	if json.Unmarshal(b, &p) != nil || p.PID <= 1 || !p.alive() {
		return proc{}, false
	}
	return p, true
}

// apps returns the app running at site, if any: the agents start and stop
// it, and the lab must still find it to cut its power or to stop it.
func (st *state) apps(site string) []proc {
	if p, ok := st.app(site); ok {
		return []proc{p}
	}
	return nil
}

func writePIDFile(path string, p proc) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
