package mariadb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/siteflip/siteflip/internal/status"
)

// standbyTimeout bounds the look at a standby from its primary's
// observation: a standby site cut off must not delay the primary's view.
const standbyTimeout = 400 * time.Millisecond

// keepSent is how many heartbeats the observer remembers the sending
// time of: at one per observation, minutes of lag.
const keepSent = 4096

// observer observes the server at its site with a pool of the admin
// account. When the server is the primary it also looks at each standby
// over the network, as the standby itself reaches the primary, and writes
// the heartbeat that measures their lag in seconds (docs/design/mariadb.md,
// "Lag in seconds, on one clock").
type observer struct {
	group, resource string
	key             string // group/resource: the heartbeat row
	s               Settings
	db              *sql.DB
	proof           *sql.DB
	standbys        []standby

	// epoch tells this observer's heartbeats from any other's; seq counts
	// them; sent is when each was sent, on this process's clock.
	epoch uint64
	mu    sync.Mutex
	seq   uint64
	sent  map[uint64]time.Time
}

type standby struct {
	site string
	s    Settings
	db   *sql.DB
}

// quiet keeps the driver's own log lines (a pooled connection the server
// closed) out of the agent's log: every error reaches the caller anyway.
var quiet sync.Once

func newObserver(group, res string, s Settings) *observer {
	quiet.Do(func() { _ = mysql.SetLogger(log.New(io.Discard, "", 0)) })
	var b [8]byte
	_, _ = rand.Read(b[:])
	o := &observer{group: group, resource: res, key: group + "/" + res, s: s,
		db: pool(s, s.Admin, s.AdminPassword), proof: pool(s, s.Proof, s.ProofPassword),
		epoch: binary.BigEndian.Uint64(b[:]) >> 1, sent: map[uint64]time.Time{}}
	return o
}

// pool is a small connection pool of an account.
func pool(s Settings, user, password string) *sql.DB {
	db, _ := sql.Open("mysql", s.dsn(user, password)) // fails only on a malformed DSN
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	return db
}

func (o *observer) addStandby(site string, s Settings) {
	o.standbys = append(o.standbys, standby{site: site, s: s, db: pool(s, s.Admin, s.AdminPassword)})
}

func (o *observer) Close() {
	o.db.Close()
	o.proof.Close()
	for _, sb := range o.standbys {
		sb.db.Close()
	}
}

// observe reads the server of s through db.
func observeDB(ctx context.Context, db *sql.DB, s Settings) (Observation, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return Observation{}, fmt.Errorf("connect to mariadb at %s as %s: %w", s.Addr(), s.Admin, err)
	}
	defer c.Close()
	return observeOn(ctx, c, s)
}

func (o *observer) Observe(ctx context.Context) status.ResourceView {
	v := status.ResourceView{Group: o.group, Resource: o.resource, Type: "mariadb", ObservedAt: time.Now().UTC()}
	ob, err := observeDB(ctx, o.db, o.s)
	if err != nil {
		v.Role, v.Error = status.RoleDown, err.Error()
		if pid, running := serverPID(o.s.StateDir); running {
			// It runs but does not answer: it may be accepting writes.
			v.Role = status.RoleUnknown
			v.Error = fmt.Sprintf("the server runs (pid %d) but does not answer: it may be accepting writes; %s", pid, err)
		}
		return v
	}
	v.Up, v.LSN, v.Error = true, ob.BinlogPos, ob.LastError
	switch ob.Role {
	case RolePrimary:
		v.Role = status.RolePrimary
	case RoleStandby:
		v.Role, v.Streaming, v.Upstream, v.LSN = status.RoleStandby, ob.Streaming, ob.Upstream, ob.CurrentPos
	default: // fenced: read-only, not replicating
		v.Role, v.LSN = status.RoleStandby, ob.CurrentPos
	}
	if v.Role != status.RolePrimary {
		v.Position = ob.CurrentPos
		return v
	}
	for _, sb := range o.standbys {
		v.Standbys = append(v.Standbys, o.look(ctx, sb, ob.BinlogPos))
	}
	o.beat(ctx)
	return v
}

// look measures one standby from its primary, whose binlog ends at end.
func (o *observer) look(ctx context.Context, sb standby, end string) status.StandbyView {
	out := status.StandbyView{Name: sb.site, Site: sb.site, State: "unreachable", LagBytes: -1, LagSeconds: -1}
	ctx, cancel := context.WithTimeout(ctx, standbyTimeout)
	defer cancel()
	ob, err := observeDB(ctx, sb.db, sb.s)
	if err != nil {
		return out
	}
	switch {
	case ob.Role != RoleStandby || ob.Upstream != o.s.Addr():
		out.State = "not replicating from here"
		return out
	case !ob.Streaming:
		out.State = "stopped"
		return out
	}
	out.State = "streaming"
	if ob.CurrentPos == end {
		out.LagBytes, out.LagSeconds = 0, 0
		return out
	}
	out.LagBytes = o.behind(ctx, ob.ExecFile, ob.ExecPos)
	var epoch, seq uint64
	if err := sb.db.QueryRowContext(ctx, "SELECT epoch, seq FROM siteflip.heartbeat WHERE resource = ?", o.key).Scan(&epoch, &seq); err != nil || epoch != o.epoch {
		return out // not measured by this observer yet
	}
	o.mu.Lock()
	at, known := o.sent[seq]
	o.mu.Unlock()
	if known {
		out.LagSeconds = time.Since(at).Seconds()
	}
	return out
}

// behind is how many bytes of the primary's binlog follow the event at
// file:pos, or -1 when it cannot say.
func (o *observer) behind(ctx context.Context, file string, pos int64) int64 {
	c, err := o.db.Conn(ctx)
	if err != nil {
		return -1
	}
	defer c.Close()
	logs, err := rowsByName(ctx, c, "SHOW BINARY LOGS")
	if err != nil {
		return -1
	}
	var total int64
	found := false
	for _, l := range logs {
		size, _ := strconv.ParseInt(l["File_size"], 10, 64)
		switch {
		case l["Log_name"] == file:
			found = true
			total += max(size-pos, 0)
		case found:
			total += size
		}
	}
	if !found {
		return -1
	}
	return total
}

// beat writes the next heartbeat as the proof account, which read_only
// binds: a fenced primary refuses it.
func (o *observer) beat(ctx context.Context) {
	o.mu.Lock()
	o.seq++
	seq := o.seq
	o.sent[seq] = time.Now()
	delete(o.sent, seq-keepSent)
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, standbyTimeout)
	defer cancel()
	_, _ = o.proof.ExecContext(ctx, `INSERT INTO siteflip.heartbeat (resource, epoch, seq) VALUES (?, ?, ?)
ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), seq = VALUES(seq)`, o.key, o.epoch, seq)
}
