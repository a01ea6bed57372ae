package haproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

// haproxyBinary returns the haproxy binary, or skips the test when there is
// none.
func haproxyBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		tb.Skipf("skipping real HAProxy test: %v", err)
	}
	return bin
}

// lab is one HAProxy in front of two HTTP servers, one per site, that
// answer with their site name:
//
//   - backend webshop: server brussels (ready) and server antwerp
//     (`disabled`, the way a standby site's server is configured);
//   - backend guarded: the same two servers with health checks, behind a
//     second frontend;
//   - backend checked: servers with health checks, one against brussels and
//     two against a port nothing listens on, a server that tracks one of
//     those, and one of weight 0.
//
// The runtime API listens on a unix socket at level admin, on a TCP
// address at level admin and on a unix socket at level user.
type lab struct {
	tb        testing.TB
	bin       string
	dir       string
	cfg       string
	stateFile string
	sock      string // admin, unix
	userSock  string // level user, unix
	tcpAPI    string // admin, TCP
	deadPort  int    // nothing listens there
	front     string // the URL of the frontend of webshop
	guarded   string // the URL of the frontend of guarded
	client    *http.Client
	proc      *Proc
	logs      int // log files written so far
}

func startLab(tb testing.TB) *lab {
	tb.Helper()
	bin := haproxyBinary(tb)
	// Unix socket paths are limited to 107 bytes: t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "siteflip-haproxy-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })

	site := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name)
		}))
		tb.Cleanup(srv.Close)
		return srv
	}
	brussels, antwerp := site("brussels"), site("antwerp")

	l := &lab{
		tb:        tb,
		bin:       bin,
		dir:       dir,
		cfg:       filepath.Join(dir, "haproxy.cfg"),
		stateFile: filepath.Join(dir, "server-state"),
		sock:      filepath.Join(dir, "admin.sock"),
		userSock:  filepath.Join(dir, "user.sock"),
		tcpAPI:    "127.0.0.1:" + strconv.Itoa(testbed.FreePort(tb)),
		deadPort:  testbed.FreePort(tb),
	}
	frontPort := testbed.FreePort(tb)
	l.front = "http://127.0.0.1:" + strconv.Itoa(frontPort) + "/"
	guardedPort := testbed.FreePort(tb)
	l.guarded = "http://127.0.0.1:" + strconv.Itoa(guardedPort) + "/"
	l.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	tb.Cleanup(l.client.CloseIdleConnections)

	cfg := fmt.Sprintf(`global
    stats socket %[1]s level admin
    stats socket %[2]s level user
    stats socket ipv4@%[3]s level admin
    server-state-file %[4]s

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    load-server-state-from-file global

frontend fe
    bind 127.0.0.1:%[5]d
    default_backend webshop

frontend guarded
    bind 127.0.0.1:%[9]d
    default_backend guarded

backend webshop
    server brussels %[6]s
    server antwerp %[7]s disabled

backend guarded
    server brussels %[6]s check inter 200ms
    server antwerp %[7]s check inter 200ms disabled

backend checked
    server fine %[6]s check inter 50ms disabled
    server sick 127.0.0.1:%[8]d check inter 50ms disabled
    server target 127.0.0.1:%[8]d check inter 50ms disabled
    server tracker %[6]s track checked/target
    server light %[6]s weight 0
`, l.sock, l.userSock, l.tcpAPI, l.stateFile, frontPort,
		brussels.Listener.Addr(), antwerp.Listener.Addr(), l.deadPort, guardedPort)
	if err := os.WriteFile(l.cfg, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	l.start(0)
	tb.Cleanup(l.stop)
	return l
}

// start starts HAProxy on the lab's configuration, logging to a file of
// its own; with old > 0 it is a reload (Proc.Start).
func (l *lab) start(old int) {
	l.tb.Helper()
	l.logs++
	p := &Proc{Bin: l.bin, Config: l.cfg, Socket: l.sock,
		Log: filepath.Join(l.dir, fmt.Sprintf("haproxy-%d.log", l.logs)), SysProcAttr: dieWithTest()}
	if err := p.Start(context.Background(), old); err != nil {
		l.tb.Fatal(err)
	}
	l.proc = p
}

// stop kills HAProxy and waits for it.
func (l *lab) stop() {
	if l.proc == nil {
		return
	}
	l.proc.Stop()
	l.proc = nil
}

// reload starts a new HAProxy with -sf on the old one, as
// `systemctl reload haproxy` does, and waits until the old one has exited.
func (l *lab) reload() {
	l.tb.Helper()
	old := l.proc
	l.client.CloseIdleConnections() // idle keep-alive connections hold the old process
	l.start(old.PID())
	select {
	case <-old.Exited():
	case <-time.After(10 * time.Second):
		old.Stop()
		l.tb.Fatal("the old haproxy did not exit within 10s of the reload")
	}
}

// restart kills HAProxy and starts it again.
func (l *lab) restart() {
	l.tb.Helper()
	l.client.CloseIdleConnections()
	l.stop()
	l.start(0)
}

// settings returns the settings of a site's server in backend webshop.
func (l *lab) settings(server string) *Settings {
	s := &Settings{RuntimeAPI: l.sock, Backend: "webshop", StateFile: l.stateFile}
	s.SetDefaults(server)
	return s
}

// get sends one request to webshop with client and returns the site that
// answered.
func (l *lab) get(client *http.Client) string {
	l.tb.Helper()
	return l.getFrom(client, l.front)
}

// getFrom sends one request to url with client and returns the site that
// answered.
func (l *lab) getFrom(client *http.Client, url string) string {
	l.tb.Helper()
	resp, err := client.Get(url)
	if err != nil {
		l.tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		l.tb.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		l.tb.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body)
}

// servedBy checks that n requests, on the lab's kept-alive client and on a
// new connection each, all reach site.
func (l *lab) servedBy(site string, n int) {
	l.tb.Helper()
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < n; i++ {
		for _, c := range []*http.Client{l.client, fresh} {
			if got := l.get(c); got != site {
				l.tb.Fatalf("request %d was served by %s, want %s", i+1, got, site)
			}
		}
	}
}

// snapshot returns the admin and operational state of every server.
func (l *lab) snapshot() string {
	l.tb.Helper()
	answer, err := command(context.Background(), &Settings{RuntimeAPI: l.sock}, "show servers state")
	if err != nil {
		l.tb.Fatal(err)
	}
	states, err := parseServersState(answer)
	if err != nil {
		l.tb.Fatal(err)
	}
	var b strings.Builder
	for _, st := range states {
		fmt.Fprintf(&b, "%s/%s admin=%d op=%d weight=%d\n", st.Backend, st.Server, st.Admin, st.Op, st.Weight)
	}
	return b.String()
}
