package lab

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/mariadb"
)

// The lab's second group, news, on MariaDB: a primary at its preferred
// site (newsSite) and a replica at the other, replicating by GTID, with
// its own demo writer.
const (
	newsGroup    = "news"
	newsResource = "db"
	newsDatabase = "news"
	mariadbPort  = 3306
	// newsServerID is each site's server_id.
	brusselsServerID = 1
	antwerpServerID  = 2
	liegeServerID    = 3
)

// Databases the lab can run (Options.DB).
const (
	DBPostgres = "postgres"
	DBMariaDB  = "mariadb"
	DBBoth     = "both"
	// DBNone runs no database: the scale lab's groups are data-less
	// (Options.Groups).
	DBNone = "none"
)

// mariadbSecrets are the lab's MariaDB password files, in secrets/.
var mariadbSecrets = []string{"mariadb-admin.password", "mariadb-repl.password", "mariadb-proof.password", "mariadb-app.password"}

// MariaDBAvailable says why MariaDB servers cannot run here, or nil: the
// lab starts them as the mysql user, so it must run as root.
func MariaDBAvailable() error {
	var missing []string
	for _, bin := range []string{"mariadbd", "mariadb-install-db", "mariadb", "mariadb-backup", "mariadb-binlog"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("MariaDB is not installed (%s missing): `apt-get install mariadb-server mariadb-client mariadb-backup` (`make lab` does this when run as root)", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return errors.New("MariaDB servers run as the mysql user, which only root can start them as: run the lab as root, or with --db postgres")
	}
	return nil
}

// dbs says which databases the lab runs: webshop's PostgreSQL, news's
// MariaDB, and, in the scale lab (Options.Groups), whether each of its
// groups has a PostgreSQL database (DB postgres) or none (DB none or
// empty); the scale lab runs neither webshop nor news.
func (o Options) dbs() (postgres, maria, scalePG bool, err error) {
	if o.Groups > 0 {
		switch o.DB {
		case "", DBNone:
			return false, false, false, nil
		case DBPostgres:
			if o.Groups > maxPGGroups {
				return false, false, false, fmt.Errorf("--groups %d --db postgres: at most %d PostgreSQL groups, two servers each on this one machine; use fewer, or data-less groups (--db none) for more", o.Groups, maxPGGroups)
			}
			return false, false, true, nil
		}
		return false, false, false, fmt.Errorf("--groups %d --db %s: the scale lab's groups are data-less (--db none, the default) or each a PostgreSQL pair (--db postgres); webshop and news run without --groups", o.Groups, o.DB)
	}
	switch o.DB {
	case "", DBPostgres:
		return true, false, false, nil
	case DBMariaDB:
		return false, true, false, nil
	case DBBoth:
		return true, true, false, nil
	case DBNone:
		return false, false, false, fmt.Errorf("--db none runs no group: add data-less groups with --groups N")
	}
	return false, false, false, fmt.Errorf("--db %q: use postgres, mariadb, both or none (with --groups N)", o.DB)
}

// newsSite is where the news group prefers to run: antwerp when the lab
// runs webshop too, at brussels, so that both sites carry production at
// once (active/active: a power cut at either site moves one group and
// leaves the other alone); brussels when news is the lab's only group.
func newsSite(withPostgres bool) string {
	if withPostgres {
		return "antwerp"
	}
	return "brussels"
}

// newsYAML is the news group of the lab topology.
func newsYAML(dir string, locs []location, o groupOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `  - name: %s
    preferred_site: %s
    policy: %s
    max_data_loss: 5s
    rto_target: 30s
`, newsGroup, newsSite(o.postgres), cmp.Or(o.policy, "automatic"))
	if o.flapPeriod > 0 {
		fmt.Fprintf(&b, "    flap_period: %s\n", o.flapPeriod)
	}
	fmt.Fprintf(&b, `    resources:
      - name: %s
        type: mariadb
        synchronous: %t
        sites:
`, newsResource, o.synchronous)
	ids := map[string]int{"brussels": brusselsServerID, "antwerp": antwerpServerID, "liege": liegeServerID}
	for _, l := range locs {
		if !l.postgres {
			continue
		}
		fmt.Fprintf(&b, `          %s:
            host: %s
            port: %d
            server_id: %d
            data_dir: %s
            state_dir: %s
            password_file: secrets/mariadb-admin.password
            replication_password_file: secrets/mariadb-repl.password
            proof_password_file: secrets/mariadb-proof.password
`, l.name, l.ip, mariadbPort, ids[l.name], filepath.Join(dir, l.name, "mdb", "data"), filepath.Join(dir, l.name, "mdb", "run"))
	}
	return b.String()
}

// mariadbInstance returns the lab's MariaDB server at site, passwords
// read.
func mariadbInstance(t *config.Topology, site string) (mariadb.Instance, bool, error) {
	g, ok := t.Group(newsGroup)
	if !ok {
		return mariadb.Instance{}, false, nil
	}
	for _, r := range g.Resources {
		if s, ok := r.Settings[site].(*mariadb.Settings); ok && r.Name == newsResource {
			rs, err := s.Resolve()
			if err != nil {
				return mariadb.Instance{}, false, err
			}
			return mariadb.Instance{Settings: rs, Dir: rs.StateDir}, true, nil
		}
	}
	return mariadb.Instance{}, false, nil
}

// appPassword is the password of the news writer's account.
func appPassword(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "secrets", "mariadb-app.password"))
	return strings.TrimSpace(string(b)), err
}

// startMariaDBs makes the news group's preferred site its primary and
// every other site of the group a replica of it.
func startMariaDBs(ctx context.Context, st *state, t *config.Topology, o Options) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	g, ok := t.Group(newsGroup)
	if !ok {
		return fmt.Errorf("the lab topology has no group %s", newsGroup)
	}
	at := g.PreferredSite
	primary, _, err := mariadbInstance(t, at)
	if err != nil {
		return err
	}
	var replicas []mariadb.Instance
	for _, site := range g.Sites {
		if site == at {
			continue
		}
		in, ok, err := mariadbInstance(t, site)
		if err != nil {
			return err
		}
		if ok {
			replicas = append(replicas, in)
		}
	}
	app, err := appPassword(st.Dir)
	if err != nil {
		return err
	}
	for _, in := range append([]mariadb.Instance{primary}, replicas...) {
		// The mysql OS user must traverse the site's folders.
		for _, d := range []string{filepath.Dir(in.Settings.DataDir), filepath.Dir(in.Dir)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := in.Init(ctx); err != nil {
			return err
		}
		if err := st.startMariaDB(ctx, siteOf(in, t), in); err != nil {
			return err
		}
	}
	if err := mariadb.SetupAccounts(ctx, primary, true); err != nil {
		return err
	}
	if _, err := primary.RootSQL(ctx, fmt.Sprintf(`CREATE DATABASE IF NOT EXISTS %[1]s;
CREATE TABLE IF NOT EXISTS %[1]s.articles (id BIGINT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL, published_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB;
CREATE USER IF NOT EXISTS app@'%%' IDENTIFIED BY '%[2]s';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON %[1]s.* TO app@'%%'`, newsDatabase, app)); err != nil {
		return err
	}
	if _, err := mariadb.Promote(ctx, primary.Settings); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "started MariaDB primary at %s (%s)\n", at, primary.Settings.Addr())
	for _, replica := range replicas {
		if err := mariadb.SetupAccounts(ctx, replica, false); err != nil {
			return err
		}
		if err := mariadb.Follow(ctx, replica.Settings, primary.Settings); err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "started MariaDB replica at %s (%s), replicating from %s by GTID\n", siteOf(replica, t), replica.Settings.Addr(), at)
	}
	return nil
}

func siteOf(in mariadb.Instance, t *config.Topology) string {
	for _, site := range t.SiteNames() {
		if other, ok, _ := mariadbInstance(t, site); ok && other.Dir == in.Dir {
			return site
		}
	}
	return ""
}

// startMariaDB starts the server of site as a lab process (in the site's
// namespace when the lab has a network) and waits until it answers.
func (st *state) startMariaDB(ctx context.Context, site string, in mariadb.Instance) error {
	if err := in.PrepareStart(); err != nil {
		return err
	}
	cmd, err := in.ServerCommand()
	if err != nil {
		return err
	}
	p, err := st.start(site, "mariadb", st.wrap(site, cmd), "")
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		for p.alive() && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		close(exited)
	}()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return in.WaitReady(wctx, exited)
}

// mariadbs returns the MariaDB server running at site, found through its
// pid file: the agents start servers themselves too.
func (st *state) mariadbs(site string) []proc {
	pid, ok := mariadb.Instance{Dir: filepath.Join(st.Dir, site, "mdb", "run")}.Running()
	if !ok {
		return nil
	}
	_, start, err := procStat(pid)
	if err != nil {
		return nil
	}
	return []proc{{Site: site, Name: "mariadb", PID: pid, Start: start}}
}

// newsClient publishes articles in the news group at whichever site's
// server accepts them, trying them in order, as a MariaDB application
// behind a list of servers would.
type newsClient struct {
	dsns []string // each site's, in the topology's order
	addr []string
	next int
	db   *sql.DB
}

func newNewsClient(t *config.Topology, dir string) (*newsClient, error) {
	// The driver's own lines (a pooled connection the server closed) are
	// noise in the writer's log: every error reaches the writer anyway.
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	dsns, err := NewsDSNs(t, dir)
	if err != nil {
		return nil, err
	}
	c := &newsClient{}
	for _, site := range t.SiteNames() {
		if dsn, ok := dsns[site]; ok {
			in, _, _ := mariadbInstance(t, site)
			c.dsns, c.addr = append(c.dsns, dsn), append(c.addr, in.Settings.Addr())
		}
	}
	return c, nil
}

func (c *newsClient) what() string { return "articles" }

func (c *newsClient) connect(context.Context) (string, error) {
	i := c.next % len(c.dsns)
	db, err := sql.Open("mysql", c.dsns[i])
	if err != nil {
		return "", err
	}
	db.SetMaxOpenConns(1)
	c.db = db
	return c.addr[i], nil
}

func (c *newsClient) write(ctx context.Context, n int) (int64, error) {
	res, err := c.db.ExecContext(ctx, "INSERT INTO articles (title) VALUES (?)", fmt.Sprintf("bulletin %d", n+1))
	if err != nil {
		c.next++ // read-only or unreachable: the next server
		return 0, err
	}
	return res.LastInsertId()
}

func (c *newsClient) close() { c.db.Close() }

// NewsDSNs are the go-sql-driver DSNs of the news group's application
// account at each site's server, for the lab's clients and tests.
func NewsDSNs(t *config.Topology, dir string) (map[string]string, error) {
	pw, err := appPassword(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, site := range t.SiteNames() {
		in, ok, err := mariadbInstance(t, site)
		if err != nil {
			return nil, err
		}
		if ok {
			out[site] = fmt.Sprintf("app:%s@tcp(%s)/%s?timeout=250ms&readTimeout=3s&writeTimeout=3s", pw, in.Settings.Addr(), newsDatabase)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("group %s has no MariaDB server in the lab topology", newsGroup)
	}
	return out, nil
}
