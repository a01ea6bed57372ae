package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/status"
)

// Tables the writer and the probe write to.
const (
	WritesTable = "chaos_writes"
	ProbeTable  = "chaos_probe"
)

// Options configure an environment.
type Options struct {
	Exe string // the siteflip binary
	Dir string // the lab's directory (must not exist)
	Out io.Writer
	// Synchronous and FlapPeriod are passed to the lab.
	Synchronous bool
	FlapPeriod  time.Duration
	Policy      string
	// WriteInterval is the writer's pace (default 5 ms: 200 writes/s).
	WriteInterval time.Duration
	// AgentEnv is added to the agents' environment (failpoints), SiteEnv
	// to one location's agent.
	AgentEnv []string
	SiteEnv  map[string][]string
	// MariaDB runs the lab's news group on MariaDB instead of webshop on
	// PostgreSQL.
	MariaDB bool
	// Stack runs webshop as the lab's web stack (lab.Options.Stack).
	Stack bool
	// Sites is the lab's number of sites (lab.Options.Sites): 3 adds
	// liege and drops the witness.
	Sites int
}

// Env is a lab in network namespaces with a writer and a probe running.
type Env struct {
	Net    *netns.Net
	Lab    lab.Options
	Topo   *config.Topology
	Client *api.Client
	Writer *Writer
	Probe  *Probe
	// Group is the lab's group the scenario acts on.
	Group string
	// mdb is, for a MariaDB lab, the application's DSN at each site.
	mdb map[string]string

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Start creates the network and the lab, waits until it is healthy, and
// starts the writer and the probe.
func Start(ctx context.Context, o Options) (*Env, error) {
	if err := netns.Available(); err != nil {
		return nil, err
	}
	lo := lab.Options{Dir: o.Dir, Exe: o.Exe, Out: o.Out, Synchronous: o.Synchronous, FlapPeriod: o.FlapPeriod, Policy: o.Policy,
		AgentEnv: o.AgentEnv, SiteEnv: o.SiteEnv, ReadyTimeout: 90 * time.Second, Stack: o.Stack, Sites: o.Sites}
	if o.Sites == 3 {
		lo.DB = lab.DBPostgres
	}
	n, err := netns.Create(ctx, netns.Options{Names: lo.NetNames()})
	if err != nil {
		return nil, err
	}
	lo.Net = n
	e := &Env{Net: n, Group: "webshop", Lab: lo}
	if o.MariaDB {
		e.Group, e.Lab.DB = "news", lab.DBMariaDB
	}
	if err := lab.Up(ctx, e.Lab); err != nil {
		// The lab goes with Close: say what its agents said first.
		err = fmt.Errorf("%w\n%s", err, agentLogTails(o.Dir, 30))
		e.Close()
		return nil, err
	}
	if e.Topo, e.Client, err = lab.Open(o.Dir); err != nil {
		e.Close()
		return nil, err
	}
	interval := o.WriteInterval
	if interval == 0 {
		interval = 5 * time.Millisecond
	}
	if o.MariaDB {
		if e.mdb, err = lab.NewsDSNs(e.Topo, o.Dir); err != nil {
			e.Close()
			return nil, err
		}
		if err := createMariaDBTables(ctx, e.mdb); err != nil {
			e.Close()
			return nil, err
		}
		e.Writer = &Writer{Table: WritesTable, Interval: interval, Dial: mariaDBPrimary(e.mdb)}
		e.Probe = &Probe{Targets: e.mdb, Table: ProbeTable, Interval: 50 * time.Millisecond,
			Dial: func(ctx context.Context, site string) (Session, error) { return dialMariaDB(ctx, site, e.mdb[site]) }}
	} else {
		dsn, err := lab.WriterDSN(e.Topo)
		if err != nil {
			e.Close()
			return nil, err
		}
		if err := createTables(ctx, dsn); err != nil {
			e.Close()
			return nil, err
		}
		targets := map[string]string{}
		g, _ := e.Topo.Group(e.Group)
		for _, site := range g.Sites {
			if targets[site], err = lab.SiteDSN(e.Topo, site); err != nil {
				e.Close()
				return nil, err
			}
		}
		e.Writer = &Writer{DSN: dsn, Table: WritesTable, Interval: interval}
		e.Probe = &Probe{Targets: targets, Table: ProbeTable, Interval: 50 * time.Millisecond}
	}
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stop = cancel
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.Writer.Run(tctx) }()
	go func() { defer e.wg.Done(); e.Probe.Run(tctx) }()
	return e, nil
}

func createTables(ctx context.Context, dsn string) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to the lab's primary: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(cctx, `CREATE TABLE IF NOT EXISTS `+WritesTable+` (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS `+ProbeTable+` (site text NOT NULL, at timestamptz NOT NULL DEFAULT now())`)
	return err
}

// StopTraffic stops the writer and the probe.
func (e *Env) StopTraffic() {
	if e.stop != nil {
		e.stop()
		e.wg.Wait()
		e.stop = nil
	}
}

// Close stops everything and removes the lab and its network.
func (e *Env) Close() {
	e.StopTraffic()
	if e.Client != nil {
		e.Client.Close()
	}
	if err := lab.Down(e.Lab); err != nil && e.Lab.Out != nil {
		fmt.Fprintf(e.Lab.Out, "lab down: %v\n", err)
	}
	if err := e.Net.Close(); err != nil && e.Lab.Out != nil {
		fmt.Fprintf(e.Lab.Out, "remove the network: %v\n", err)
	}
}

// Addr is the address of a location.
func (e *Env) Addr(site string) string { return e.Net.Addr(site).String() }

// WaitStatus polls the status until cond holds or timeout passes.
func (e *Env) WaitStatus(ctx context.Context, timeout time.Duration, cond func(status.Status) bool) (status.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last status.Status
	var lastErr error
	for {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := e.Client.Status(qctx)
		qcancel()
		if err == nil {
			last = st
			if cond(st) {
				return st, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil && last.Installation == "" {
				return last, fmt.Errorf("no status: %w", lastErr)
			}
			return last, fmt.Errorf("condition not met within %s", timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Present reads the ids of the writes the active primary holds.
func (e *Env) Present(ctx context.Context) (map[int64]bool, error) {
	if e.mdb != nil {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return presentMariaDB(cctx, e.mdb)
	}
	dsn, err := lab.WriterDSN(e.Topo)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(cctx, "SELECT id FROM "+WritesTable)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// SelfFences counts the lines in a site's agent log that say its serve
// lease ran out and a database was fenced, by the agent or its watchdog.
func (e *Env) SelfFences(site string) int {
	log := filepath.Join(e.Lab.Dir, site, "agent.log")
	return countLines(log, "serve lease ran out: no other location granted it") + countLines(log, "watchdog: serve lease ran out; primary fenced")
}

// logged counts the lines of every location's agent log that contain s.
func (e *Env) logged(s string) int {
	n := 0
	for _, site := range []string{"brussels", "antwerp", "frankfurt"} {
		n += countLines(filepath.Join(e.Lab.Dir, site, "agent.log"), s)
	}
	return n
}

// agentLogTails returns the last n lines of each location's agent log,
// without the embedded etcd's own lines.
func agentLogTails(dir string, n int) string {
	var b strings.Builder
	for _, site := range lab.NetNames() {
		data, err := os.ReadFile(filepath.Join(dir, site, "agent.log"))
		if err != nil {
			continue
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if !strings.Contains(l, "component=etcd") {
				lines = append(lines, l)
			}
		}
		fmt.Fprintf(&b, "last lines of %s/agent.log:\n%s\n", site, strings.Join(lines[max(0, len(lines)-n):], "\n"))
	}
	return b.String()
}
