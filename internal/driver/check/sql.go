package check

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/siteflip/siteflip/internal/netns"
)

// rows is what a query returned, as far as a check judges it.
type rows struct {
	column string // the first column's name
	first  *cell  // the first column of the first row; nil: no rows
	count  int
}

// cell is one value, as the server writes it and, for a timestamp, as a
// time.
type cell struct {
	text   string
	null   bool
	time   time.Time
	isTime bool
}

// sql runs the query on the server of sql.resource, in a read-only
// transaction, and judges its rows.
func (v *verifier) sql(ctx context.Context, targets map[string]string) (string, error) {
	q := v.s.SQL
	addr, ok := targets[q.Resource]
	if !ok {
		return "", fmt.Errorf("sql.resource: %w", errNoAddress{q.Resource, "an sql check connects over TCP to its server's host and port at this site"})
	}
	password, err := q.password()
	if err != nil {
		return "", err
	}
	var res rows
	switch v.sqlType {
	case typePostgres:
		res, err = queryPostgres(ctx, addr, q, password, v.dial)
	case typeMariaDB:
		res, err = queryMariaDB(ctx, addr, q, password, v.dial)
	default:
		return "", fmt.Errorf("sql.resource %s is a %s resource: an sql check asks the server of a postgres or mariadb resource", q.Resource, v.sqlType)
	}
	if err != nil {
		return "", &failure{expected: "rows from " + v.sqlType + " at " + addr + v.inside(), err: err}
	}
	return q.judge(res, time.Now())
}

// judge says what the rows show, and what is wrong with them.
func (q *SQL) judge(res rows, now time.Time) (string, error) {
	seen := "no rows"
	if res.first != nil {
		v := res.first.text
		if res.first.null {
			v = "NULL"
		}
		if len(v) > 64 {
			v = v[:64] + "…"
		}
		seen = res.column + "=" + v
		if q.MinRows > 0 || res.count > 1 {
			seen += ", " + nRows(res.count)
		}
	}
	var age time.Duration
	if q.NewerThan != nil && res.first != nil && res.first.isTime {
		age = now.Sub(res.first.time).Round(time.Second)
		seen += fmt.Sprintf(" (%s old)", max(age, 0))
	}
	var expected, wrong []string
	if q.MinRows > 0 {
		expected = append(expected, "at least "+nRows(q.MinRows))
		if res.count < q.MinRows {
			wrong = append(wrong, nRows(res.count))
		}
	}
	if q.Expect != nil {
		expected = append(expected, fmt.Sprintf("%s %q", firstName(res.column), *q.Expect))
		switch {
		case res.first == nil:
			wrong = append(wrong, "no rows")
		case res.first.null:
			wrong = append(wrong, "NULL")
		case res.first.text != *q.Expect:
			wrong = append(wrong, fmt.Sprintf("%s %q", firstName(res.column), res.first.text))
		}
	}
	if q.NewerThan != nil {
		expected = append(expected, fmt.Sprintf("%s at most %s old", firstName(res.column), q.NewerThan.D()))
		switch {
		case res.first == nil:
			wrong = append(wrong, "no rows")
		case res.first.null:
			wrong = append(wrong, "NULL, not a timestamp")
		case !res.first.isTime:
			wrong = append(wrong, fmt.Sprintf("%q, not a timestamp: select a timestamp column first", res.first.text))
		case age > q.NewerThan.D():
			wrong = append(wrong, fmt.Sprintf("%s, %s old", res.first.text, age))
		}
	}
	if len(wrong) > 0 {
		return seen, &failure{expected: strings.Join(expected, " and "), seen: strings.Join(dedupe(wrong), "; ")}
	}
	return seen, nil
}

func nRows(n int) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

func firstName(column string) string {
	if column == "" {
		return "the first value"
	}
	return column
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// password reads the password from password_file or password_env; "" when
// neither is set.
func (q *SQL) password() (string, error) {
	switch {
	case q.PasswordFile != "":
		b, err := os.ReadFile(q.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("sql.password_file: %w; write the password of %s into it", err, q.User)
		}
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return "", fmt.Errorf("sql.password_file %s is empty: write the password of %s into it", q.PasswordFile, q.User)
		}
		return pw, nil
	case q.PasswordEnv != "":
		pw, ok := os.LookupEnv(q.PasswordEnv)
		if !ok || pw == "" {
			return "", fmt.Errorf("environment variable %s named by sql.password_env is not set or empty: export the password of %s in siteflip's environment", q.PasswordEnv, q.User)
		}
		return pw, nil
	}
	return "", nil
}

// queryPostgres runs q on the PostgreSQL server at addr. The query goes
// over the extended protocol, which takes one statement only, so that it
// cannot end the read-only transaction; results come back as text, as
// psql shows them.
func queryPostgres(ctx context.Context, addr string, q *SQL, password string, dial netns.DialFunc) (rows, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return rows{}, fmt.Errorf("address %q of %s is not host:port", addr, q.Resource)
	}
	u := url.URL{Scheme: "postgres", User: url.User(q.User), Host: net.JoinHostPort(host, port), Path: "/" + q.Database}
	u.RawQuery = url.Values{"sslmode": {"prefer"}, "application_name": {"siteflip-check"}}.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return rows{}, fmt.Errorf("connection settings for postgres at %s: %w", addr, err)
	}
	cfg.Password = password
	if dial != nil {
		cfg.DialFunc = pgconn.DialFunc(dial)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return rows{}, fmt.Errorf("connect to postgres at %s as %s: %w", addr, q.User, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return rows{}, fmt.Errorf("begin a read-only transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rs, err := tx.Query(ctx, q.Query, pgx.QueryExecModeExec)
	if err != nil {
		return rows{}, fmt.Errorf("query: %w", err)
	}
	defer rs.Close()
	fields := rs.FieldDescriptions()
	if len(fields) == 0 {
		rs.Close() // a query that failed says so only once its rows are closed
		if err := rs.Err(); err != nil {
			return rows{}, fmt.Errorf("query: %w", err)
		}
		return rows{}, errors.New("the query returns no columns: write a statement that returns rows, e.g. SELECT")
	}
	res := rows{column: fields[0].Name}
	for rs.Next() {
		res.count++
		if res.count > 1 {
			continue
		}
		raw := rs.RawValues()[0]
		c := &cell{text: string(raw), null: raw == nil}
		if vals, err := rs.Values(); err == nil {
			c.time, c.isTime = vals[0].(time.Time)
		}
		res.first = c
	}
	if err := rs.Err(); err != nil {
		return rows{}, fmt.Errorf("query: %w", err)
	}
	return res, nil
}

// queryMariaDB runs q on the MariaDB server at addr. The session's time
// zone is UTC, so that a TIMESTAMP reads as the time it is; a DATETIME,
// which has no zone, is read as UTC.
func queryMariaDB(ctx context.Context, addr string, q *SQL, password string, dial netns.DialFunc) (rows, error) {
	cfg := mysql.NewConfig()
	cfg.User = q.User
	cfg.Passwd = password
	cfg.Net = "tcp"
	cfg.Addr = addr
	cfg.DialFunc = dial
	cfg.DBName = q.Database
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	if dl, ok := ctx.Deadline(); ok {
		cfg.Timeout = time.Until(dl)
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return rows{}, fmt.Errorf("connection settings for mariadb at %s: %w", addr, err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return rows{}, fmt.Errorf("connect to mariadb at %s as %s: %w", addr, q.User, err)
	}
	defer tx.Rollback()
	rs, err := tx.QueryContext(ctx, q.Query)
	if err != nil {
		return rows{}, fmt.Errorf("query: %w", err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return rows{}, fmt.Errorf("query: %w", err)
	}
	if len(cols) == 0 {
		return rows{}, errors.New("the query returns no columns: write a statement that returns rows, e.g. SELECT")
	}
	res := rows{column: cols[0]}
	for rs.Next() {
		res.count++
		if res.count > 1 {
			continue
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return rows{}, fmt.Errorf("read the first row: %w", err)
		}
		c := &cell{}
		switch x := vals[0].(type) {
		case nil:
			c.null = true
		case []byte:
			c.text = string(x)
		case time.Time:
			c.time, c.isTime = x, true
			c.text = x.Format("2006-01-02 15:04:05.999999")
		default:
			c.text = fmt.Sprint(x)
		}
		res.first = c
	}
	if err := rs.Err(); err != nil {
		return rows{}, fmt.Errorf("query: %w", err)
	}
	return res, nil
}
