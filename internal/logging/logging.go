// Package logging owns how the agent and its watchdog write their logs:
// the two formats (text for a terminal, JSON for a log shipper), the
// levels, and the few rules that keep every line readable by machines —
// one key once, durations as text, and foreign libraries' keys (etcd,
// GoBGP) kept from colliding with siteflip's own (docs/logs.md).
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// The formats New accepts.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Keys every line may carry from its logger's context or from the
// handler itself; a foreign library's field of the same name is renamed
// (Foreign).
var reserved = map[string]bool{
	slog.TimeKey: true, slog.LevelKey: true, slog.MessageKey: true, slog.SourceKey: true,
	"site": true, "component": true, "group": true, "resource": true,
}

// New returns a logger writing to w in format (text or json) from level
// (debug, info, warn or error) up. The values are those of the agent's
// and the watchdog's --log-format and --log-level flags, and an error
// names the flag.
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case FormatText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case FormatJSON:
		// A duration is written as Go writes it ("1.5s"), as the text
		// format does, rather than as a count of nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// ParseLevel reads a --log-level value: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
}

// Foreign returns the key under which a field named key, logged by the
// library prefix ("etcd", "bgp"), goes on a siteflip line: the key
// itself, unless siteflip's handler or its loggers' context use that name
// (msg, time, site, component …), then prefix_key. etcd logs a field
// named "msg", for one.
func Foreign(prefix, key string) string {
	if reserved[key] {
		return prefix + "_" + key
	}
	return key
}
