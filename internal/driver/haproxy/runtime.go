package haproxy

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Errors the runtime API calls wrap.
var (
	// ErrUnreachable: no connection to the runtime API, or no complete
	// answer from it.
	ErrUnreachable = errors.New("runtime API unreachable")
	// ErrNoBackend: HAProxy has no backend of that name.
	ErrNoBackend = errors.New("no such backend")
	// ErrNoServer: the backend has no server of that name.
	ErrNoServer = errors.New("no such server")
	// ErrDenied: the socket's level is below admin.
	ErrDenied = errors.New("permission denied")
	// ErrRejected: HAProxy refused the command for another reason.
	ErrRejected = errors.New("command rejected")
	// ErrNotApplied: HAProxy accepted the change but the state read back
	// shows it is not in effect.
	ErrNotApplied = errors.New("change not in effect")
)

// maxAnswer bounds what one command may answer: a server state dump of a
// few thousand servers is a few hundred kilobytes.
const maxAnswer = 64 << 20

// command sends one command to the runtime API of s and returns HAProxy's
// whole answer. Without `prompt`, HAProxy answers one command and closes
// the connection, so the answer is everything up to EOF.
func command(ctx context.Context, s *Settings, cmd string) (string, error) {
	network, addr := s.endpoint()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return "", unreachable(s, cmd, ctxErr(ctx, err))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", unreachable(s, cmd, ctxErr(ctx, err))
	}
	var b strings.Builder
	n, err := io.Copy(&b, io.LimitReader(conn, maxAnswer+1))
	if err != nil {
		return "", unreachable(s, cmd, fmt.Errorf("reading the answer: %w", ctxErr(ctx, err)))
	}
	if n > maxAnswer {
		return "", fmt.Errorf("haproxy %s: %s: %w: the answer is longer than %d bytes", s.RuntimeAPI, cmd, ErrRejected, maxAnswer)
	}
	return b.String(), nil
}

// ctxErr prefers the context's error, which says why a deadline was set,
// to the i/o timeout it caused. The connection's only deadline is the
// context's, and its timer may fire before the context's own.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// unreachable describes a failure to talk to the runtime API and what to do.
func unreachable(s *Settings, cmd string, cause error) error {
	network, addr := s.endpoint()
	var hint string
	switch {
	case errors.Is(cause, context.DeadlineExceeded):
		hint = fmt.Sprintf("no answer within the timeout (%s): is HAProxy overloaded, or is %s another service?", s.timeout(), addr)
	case errors.Is(cause, fs.ErrPermission):
		hint = fmt.Sprintf("siteflip's user may not open the socket: give it the socket's group with `stats socket %s mode 660 group GROUP level admin` in haproxy.cfg", addr)
	case network == "unix":
		hint = fmt.Sprintf("is HAProxy running, with `stats socket %s level admin` in the global section of haproxy.cfg?", addr)
	default:
		hint = fmt.Sprintf("is HAProxy running, with `stats socket ipv4@%s level admin` in the global section of haproxy.cfg, and is that address reachable from here?", addr)
	}
	return fmt.Errorf("haproxy %s: %s: %w: %w; %s", s.RuntimeAPI, cmd, ErrUnreachable, cause, hint)
}

// answerError turns an answer HAProxy gave instead of the expected one into
// an error that says what HAProxy answered and what to do.
func answerError(s *Settings, cmd, answer string) error {
	a := strings.TrimSpace(answer)
	var sentinel error
	var hint string
	switch {
	case a == "No such server.":
		sentinel, hint = ErrNoServer, fmt.Sprintf("backend %s has no server %s: set server to one of its servers (default: the site name) or add the server to haproxy.cfg", s.Backend, s.Server)
	case a == "No such backend." || a == "Can't find backend." || a == "No such proxy.":
		sentinel, hint = ErrNoBackend, fmt.Sprintf("HAProxy has no backend %s: set backend to a backend of haproxy.cfg", s.Backend)
	case strings.HasPrefix(a, "Permission denied"):
		sentinel, hint = ErrDenied, fmt.Sprintf("the socket's level is below admin: declare it `stats socket %s level admin` in haproxy.cfg", s.RuntimeAPI)
	case strings.HasPrefix(a, "Unknown command"):
		sentinel, hint = ErrRejected, "this HAProxy does not know the command: siteflip needs HAProxy 1.8 or newer"
	case a == "":
		return fmt.Errorf("haproxy %s: %s: %w: HAProxy closed the connection without an answer: point runtime_api at a stats socket of HAProxy's worker, not at the master CLI", s.RuntimeAPI, cmd, ErrRejected)
	default:
		sentinel, hint = ErrRejected, "check that runtime_api is a stats socket of HAProxy; HAProxy's log may say more"
	}
	return fmt.Errorf("haproxy %s: %s: %w: HAProxy answered %q; %s", s.RuntimeAPI, cmd, sentinel, firstLine(a), hint)
}

// set sends `set server BACKEND/SERVER state STATE`, which HAProxy answers
// with an empty line when it accepts it.
func set(ctx context.Context, s *Settings, state string) error {
	cmd := "set server " + s.Backend + "/" + s.Server + " state " + state
	answer, err := command(ctx, s, cmd)
	if err != nil {
		return err
	}
	if strings.TrimSpace(answer) != "" {
		return answerError(s, cmd, answer)
	}
	return nil
}

// stat returns the row of `show stat` of the server st by column name, or
// nil when HAProxy gives none. It names the backend by its numeric id,
// because a frontend may have the backend's name.
func stat(ctx context.Context, s *Settings, st ServerState) map[string]string {
	proxy := s.Backend
	if st.backendID > 0 {
		proxy = strconv.Itoa(st.backendID)
	}
	answer, err := command(ctx, s, "show stat "+proxy+" 4 -1") // 4: servers only
	if err != nil || !strings.HasPrefix(answer, "# ") {
		return nil
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(answer, "# ")))
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil || len(records) < 2 {
		return nil
	}
	header := records[0]
	for _, rec := range records[1:] {
		row := map[string]string{}
		for i, name := range header {
			if i < len(rec) {
				row[name] = rec[i]
			}
		}
		if row["pxname"] == s.Backend && row["svname"] == s.Server {
			return row
		}
	}
	return nil
}

// checkInfo describes the server's status and last health check from a row
// of stat, for an error that says why a server is down; "" when there is
// nothing to add.
func checkInfo(row map[string]string) string {
	if row == nil {
		return ""
	}
	info := "HAProxy reports it " + row["status"]
	if cs := row["check_status"]; cs != "" {
		info += ", health check " + cs
		if d := row["last_chk"]; d != "" {
			info += fmt.Sprintf(" %q", d)
		} else if d := row["check_desc"]; d != "" {
			info += fmt.Sprintf(" (%s)", d)
		}
	}
	return info
}
