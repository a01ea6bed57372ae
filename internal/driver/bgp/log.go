package bgp

import (
	"context"
	"log/slog"
	"strings"
	"unicode"

	"github.com/siteflip/siteflip/internal/logging"
)

// gobgpHandler writes GoBGP's log as siteflip's: what happens to a
// session at info (so that a flap leaves a trace), GoBGP's other info
// chatter (configuration applied, connection managers started) at debug,
// its warnings and errors as they are; keys in siteflip's snake_case, the
// neighbor's address as peer, each key once.
type gobgpHandler struct {
	h    slog.Handler
	keys map[string]bool // the keys WithAttrs added; never changed once built
}

// gobgpSession are GoBGP's messages about sessions: written at info
// under siteflip's words, whatever level GoBGP gives them (it logs state
// changes at debug).
var gobgpSession = map[string]string{
	"Peer Up":               "bgp session established",
	"Peer Down":             "bgp session down",
	"state changed":         "bgp session state changed",
	"sent notification":     "bgp notification sent",
	"received notification": "bgp notification received",
}

// gobgpLevel is the level and message a GoBGP record is written with.
func gobgpLevel(l slog.Level, msg string) (slog.Level, string) {
	if m, ok := gobgpSession[msg]; ok && l <= slog.LevelInfo {
		return slog.LevelInfo, m
	}
	if l == slog.LevelInfo {
		return slog.LevelDebug, msg
	}
	return l, msg
}

// gobgpKey is the key a GoBGP attribute is written under: GoBGP names the
// neighbor Key (with Topic Peer) or Peer, and its other keys in CamelCase.
func gobgpKey(k string) string {
	switch k {
	case "Key", "Peer":
		k = "peer"
	case "Err":
		k = "error"
	default:
		k = snake(k)
	}
	return logging.Foreign("bgp", k)
}

// snake turns RemoteAddress, adminState and ClusterID into remote_address,
// admin_state and cluster_id.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || unicode.IsUpper(prev) && nextLower {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func (g gobgpHandler) Enabled(ctx context.Context, l slog.Level) bool {
	// A debug record may be a session's, written at info.
	return g.h.Enabled(ctx, max(l, slog.LevelInfo))
}

func (g gobgpHandler) Handle(ctx context.Context, r slog.Record) error {
	level, msg := gobgpLevel(r.Level, r.Message)
	if !g.h.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	keys := make(map[string]bool, len(g.keys)+r.NumAttrs())
	for k := range g.keys {
		keys[k] = true
	}
	r.Attrs(func(a slog.Attr) bool {
		if a, ok := renameOnce(a, keys); ok {
			out.AddAttrs(a)
		}
		return true
	})
	return g.h.Handle(ctx, out)
}

func (g gobgpHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	keys := make(map[string]bool, len(g.keys)+len(attrs))
	for k := range g.keys {
		keys[k] = true
	}
	var kept []slog.Attr
	for _, a := range attrs {
		if a, ok := renameOnce(a, keys); ok {
			kept = append(kept, a)
		}
	}
	return gobgpHandler{h: g.h.WithAttrs(kept), keys: keys}
}

func (g gobgpHandler) WithGroup(name string) slog.Handler {
	// The group's keys live under its name: none of them is taken yet.
	return gobgpHandler{h: g.h.WithGroup(name)}
}

// renameOnce renames a to its siteflip key, and reports false when keys
// (to which it adds) has that key already.
func renameOnce(a slog.Attr, keys map[string]bool) (slog.Attr, bool) {
	a.Key = gobgpKey(a.Key)
	if keys[a.Key] {
		return a, false
	}
	keys[a.Key] = true
	return a, true
}
