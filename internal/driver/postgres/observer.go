package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is what an instance is doing.
type Role string

const (
	RolePrimary Role = "primary"
	RoleStandby Role = "standby"
	RoleDown    Role = "down" // not reachable, or the observation failed
)

// Observation is one look at an instance.
type Observation struct {
	Up   bool `json:"up"`
	Role Role `json:"role"`
	// Timeline is the instance's timeline. On a primary it comes from the
	// last checkpoint, so right after a promotion it shows the old timeline
	// until the end-of-recovery checkpoint finishes. On a standby it is the
	// timeline the WAL receiver is receiving, or the last restartpoint's
	// timeline when no receiver is running.
	Timeline int64 `json:"timeline,omitempty"`
	// LSN is pg_current_wal_lsn() on a primary and pg_last_wal_replay_lsn()
	// on a standby.
	LSN        string `json:"lsn,omitempty"`
	ReceiveLSN string `json:"receive_lsn,omitempty"` // standby only: pg_last_wal_receive_lsn()
	Streaming  bool   `json:"streaming"`             // standby: its WAL receiver's status is "streaming"
	Upstream   string `json:"upstream,omitempty"`    // standby: sender host:port from pg_stat_wal_receiver
	// LastReplay is pg_last_xact_replay_timestamp() on a standby: the
	// commit time of the last transaction replayed. Zero before the first.
	LastReplay time.Time `json:"last_replay,omitzero"`
	Standbys   []Standby `json:"standbys,omitempty"` // primary only: rows of pg_stat_replication
	Error      string    `json:"error,omitempty"`    // why it is down / what failed
}

// Standby is one row of pg_stat_replication on a primary.
type Standby struct {
	ApplicationName string `json:"application_name"`
	State           string `json:"state"` // startup, catchup, streaming, backup, stopping
	SyncState       string `json:"sync_state"`
	ReplayLSN       string `json:"replay_lsn"` // "" until the standby reports one
	// LagBytes is how far replay_lsn is behind pg_current_wal_lsn(), both
	// read in the same statement; -1 while the standby has not reported a
	// replay position.
	LagBytes int64 `json:"lag_bytes"`
	// LagSeconds is replay_lag in seconds. PostgreSQL shows NULL when the
	// standby has caught up and no WAL has been written for a while; that
	// is reported as 0 when the standby is streaming or LagBytes is 0 —
	// an idle primary's current position can be a few bytes past what it
	// has flushed and sent, so LagBytes need not be 0 then — and as -1
	// (unknown) for a standby that is neither.
	LagSeconds float64 `json:"lag_seconds"`
}

// Observer observes one instance. It keeps one connection, opened on the
// first Observe and after any failure. It is safe for concurrent use;
// observations are serialised.
type Observer struct {
	settings Settings

	mu   sync.Mutex
	conn *pgx.Conn
}

// observerAppName is the application_name of the observer's connections, so
// they are easy to tell apart in pg_stat_activity.
const observerAppName = "siteflip-observer"

const (
	// connectTimeout bounds one connection attempt when ctx allows longer.
	connectTimeout = 5 * time.Second
	// defaultObserveTimeout bounds Observe when ctx has no deadline.
	defaultObserveTimeout = 10 * time.Second
	// closeTimeout bounds the polite goodbye when dropping a connection.
	closeTimeout = time.Second
)

// NewObserver returns an observer for the instance s describes. It does not
// connect; the first Observe does. Passwords are read on every connect.
func NewObserver(s Settings) *Observer {
	return &Observer{settings: s}
}

// Observe looks at the instance once. It never fails: a failure is an
// observation with Up false, Role "down" and Error saying what went wrong.
// ctx bounds connecting and querying; without a deadline, 10s apply. A
// reused connection that fails is replaced once before giving up, so a
// server restart between observations is not reported as down.
func (o *Observer) Observe(ctx context.Context) Observation {
	o.mu.Lock()
	defer o.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultObserveTimeout)
		defer cancel()
	}

	reused := o.conn != nil
	if !reused {
		conn, err := connect(ctx, o.settings, observerAppName)
		if err != nil {
			return down(err)
		}
		o.conn = conn
	}
	obs, err := observe(ctx, o.conn)
	if err != nil && reused && ctx.Err() == nil {
		o.drop()
		conn, cerr := connect(ctx, o.settings, observerAppName)
		if cerr != nil {
			return down(cerr)
		}
		o.conn = conn
		obs, err = observe(ctx, o.conn)
	}
	if err != nil {
		o.drop()
		return down(fmt.Errorf("observe postgres at %s: %w", o.settings.addr(), err))
	}
	return obs
}

// Close closes the observer's connection. A later Observe reconnects.
func (o *Observer) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.drop()
}

func (o *Observer) drop() {
	if o.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = o.conn.Close(ctx) // the connection is being discarded either way
	o.conn = nil
}

func down(err error) Observation {
	// pgx lists every connection attempt on a line of its own; keep the
	// reason on one line for logs and status output.
	msg := strings.NewReplacer(":\n\t", ": ", "\n\t", "; ", "\n", " ").Replace(err.Error())
	return Observation{Up: false, Role: RoleDown, Error: msg}
}

// The observation queries. They must not fail on either role, so functions
// that only work on a primary (pg_current_wal_lsn) are behind a CASE on
// pg_is_in_recovery(), which PostgreSQL evaluates lazily.
const (
	statusQuery = `
WITH s AS (SELECT pg_is_in_recovery() AS recovery)
SELECT s.recovery,
       (CASE WHEN s.recovery THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
       pg_last_wal_receive_lsn()::text,
       pg_last_xact_replay_timestamp(),
       (SELECT timeline_id FROM pg_control_checkpoint())::int8
FROM s`

	walReceiverQuery = `
SELECT status, received_tli::int8, sender_host, sender_port
FROM pg_stat_wal_receiver`

	replicationQuery = `
WITH cur AS (
  SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn
)
SELECT r.application_name, r.state, r.sync_state, r.replay_lsn::text,
       pg_wal_lsn_diff(cur.lsn, r.replay_lsn)::int8,
       EXTRACT(epoch FROM r.replay_lag)::float8
FROM pg_stat_replication r CROSS JOIN cur
ORDER BY r.application_name, r.pid`
)

// observe runs the observation batch: one round trip on conn.
func observe(ctx context.Context, conn *pgx.Conn) (Observation, error) {
	var (
		recovery             bool
		lsn, receiveLSN      *string
		lastReplay           *time.Time
		checkpointTimeline   *int64
		wrStatus, senderHost *string
		receivedTLI          *int64
		senderPort           *int32
		standbys             []Standby
	)

	b := &pgx.Batch{}
	b.Queue(statusQuery).QueryRow(func(row pgx.Row) error {
		return row.Scan(&recovery, &lsn, &receiveLSN, &lastReplay, &checkpointTimeline)
	})
	b.Queue(walReceiverQuery).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&wrStatus, &receivedTLI, &senderHost, &senderPort); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	b.Queue(replicationQuery).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				app, state, sync, replay *string
				lagBytes                 *int64
				lagSeconds               *float64
			)
			if err := rows.Scan(&app, &state, &sync, &replay, &lagBytes, &lagSeconds); err != nil {
				return err
			}
			standbys = append(standbys, standbyRow(app, state, sync, replay, lagBytes, lagSeconds))
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return Observation{}, err
	}

	obs := Observation{Up: true, LSN: deref(lsn)}
	if !recovery {
		obs.Role = RolePrimary
		if checkpointTimeline != nil {
			obs.Timeline = *checkpointTimeline
		}
		obs.Standbys = standbys
		return obs, nil
	}

	obs.Role = RoleStandby
	obs.ReceiveLSN = deref(receiveLSN)
	if lastReplay != nil {
		obs.LastReplay = *lastReplay
	}
	obs.Streaming = deref(wrStatus) == "streaming"
	switch {
	case receivedTLI != nil && *receivedTLI > 0:
		obs.Timeline = *receivedTLI
	case checkpointTimeline != nil:
		obs.Timeline = *checkpointTimeline
	}
	if senderHost != nil && *senderHost != "" {
		if senderPort != nil {
			obs.Upstream = joinHostPort(*senderHost, int(*senderPort))
		} else {
			obs.Upstream = *senderHost
		}
	}
	return obs, nil
}

// standbyRow makes a Standby of a row of replicationQuery.
func standbyRow(app, state, sync, replay *string, lagBytes *int64, lagSeconds *float64) Standby {
	sb := Standby{
		ApplicationName: deref(app),
		State:           deref(state),
		SyncState:       deref(sync),
		ReplayLSN:       deref(replay),
		LagBytes:        -1,
		LagSeconds:      -1,
	}
	if lagBytes != nil {
		sb.LagBytes = *lagBytes
	}
	switch {
	case lagSeconds != nil:
		sb.LagSeconds = *lagSeconds
	case sb.LagBytes == 0 || sb.State == "streaming":
		sb.LagSeconds = 0 // idle and caught up
	}
	return sb
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// connect opens a connection to the instance s describes, as s.User with
// s.Password().
func connect(ctx context.Context, s Settings, appName string) (*pgx.Conn, error) {
	pw, err := s.Password()
	if err != nil {
		return nil, fmt.Errorf("password for postgres at %s: %w", s.addr(), err)
	}
	cfg, err := connConfig(s, appName, pw)
	if err != nil {
		return nil, err
	}
	return connectConfig(ctx, s, cfg)
}

func connectConfig(ctx context.Context, s Settings, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres at %s as %s: %w", s.addr(), s.User, err)
	}
	return conn, nil
}

// connConfig is how siteflip connects to s: over TCP to host:port, with
// TLS when the server offers it (sslmode=prefer, not verified), and a
// connect timeout on top of whatever ctx allows.
func connConfig(s Settings, appName, password string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(conninfo(
		"host", s.Host,
		"port", strconv.Itoa(s.Port),
		"dbname", s.Database,
		"user", s.User,
		"sslmode", "prefer",
		"application_name", appName,
		"connect_timeout", strconv.Itoa(int(connectTimeout/time.Second)),
	))
	if err != nil {
		return nil, fmt.Errorf("connection settings for postgres at %s: %w; check host, port, database and user", s.addr(), err)
	}
	cfg.Password = password
	return cfg, nil
}

// conninfo builds a libpq key/value connection string from key, value
// pairs, quoting every value.
func conninfo(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[i])
		b.WriteString("='")
		b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[i+1]))
		b.WriteByte('\'')
	}
	return b.String()
}
