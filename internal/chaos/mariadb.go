package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"sync"

	_ "github.com/go-sql-driver/mysql" // the MariaDB clients' driver
)

// MariaDB clients: the application of a MariaDB group reaches whichever
// server accepts writes, as a connector with a list of servers does.

// mdbSession is a connection to one MariaDB server.
type mdbSession struct {
	db     *sql.DB
	c      *sql.Conn
	server string
}

// dialMariaDB connects to the server of site through dsn.
func dialMariaDB(ctx context.Context, site, dsn string) (*mdbSession, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	c, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &mdbSession{db: db, c: c, server: site}, nil
}

func (s *mdbSession) Insert(ctx context.Context, table string, id int64) error {
	_, err := s.c.ExecContext(ctx, "INSERT INTO "+table+" (id) VALUES (?)", id)
	return err
}

func (s *mdbSession) Mark(ctx context.Context, table, site string) error {
	_, err := s.c.ExecContext(ctx, "INSERT INTO "+table+" (site) VALUES (?)", site)
	return err
}

func (s *mdbSession) Server() string { return s.server }

func (s *mdbSession) Close() {
	s.c.Close()
	s.db.Close()
}

// mariaDBPrimary returns a dialer that connects to the first server, in
// site order from the last one that answered, that is not read-only.
func mariaDBPrimary(dsns map[string]string) func(ctx context.Context) (Session, error) {
	var sites []string
	for site := range dsns {
		sites = append(sites, site)
	}
	sort.Strings(sites)
	var mu sync.Mutex
	next := 0
	return func(ctx context.Context) (Session, error) {
		mu.Lock()
		from := next
		mu.Unlock()
		var last error = fmt.Errorf("no server")
		for i := range sites {
			site := sites[(from+i)%len(sites)]
			// A server that fails sends the next attempt to the one after
			// it, even when this one runs out of time.
			skip := func() {
				mu.Lock()
				next = (from + i + 1) % len(sites)
				mu.Unlock()
			}
			s, err := dialMariaDB(ctx, site, dsns[site])
			if err != nil {
				last = err
				skip()
				continue
			}
			var ro bool
			if err := s.c.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ro); err != nil || ro {
				s.Close()
				last = fmt.Errorf("%s is read-only (%v)", site, err)
				skip()
				continue
			}
			mu.Lock()
			next = (from + i) % len(sites)
			mu.Unlock()
			return s, nil
		}
		return nil, last
	}
}

// createMariaDBTables creates the writer's and the probe's tables at the
// primary.
func createMariaDBTables(ctx context.Context, dsns map[string]string) error {
	s, err := mariaDBPrimary(dsns)(ctx)
	if err != nil {
		return fmt.Errorf("connect to the lab's MariaDB primary: %w", err)
	}
	defer s.Close()
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS " + WritesTable + " (id BIGINT PRIMARY KEY, at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS " + ProbeTable + " (site VARCHAR(32) NOT NULL, at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB",
	} {
		if _, err := s.(*mdbSession).c.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// presentMariaDB reads the writer's ids at the primary.
func presentMariaDB(ctx context.Context, dsns map[string]string) (map[int64]bool, error) {
	s, err := mariaDBPrimary(dsns)(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rows, err := s.(*mdbSession).c.QueryContext(ctx, "SELECT id FROM "+WritesTable)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}
