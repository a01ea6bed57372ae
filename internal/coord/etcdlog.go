package coord

import (
	"context"
	"log/slog"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/siteflip/siteflip/internal/logging"
)

// etcdLogger sends the embedded member's log to the agent's: each of
// etcd's entries becomes one record whose message is etcd's message and
// whose attributes are etcd's fields, under their own keys (one renamed
// when siteflip's line uses it already, msg to etcd_msg). etcd's info
// entries (a member's every start, snapshot and compaction) go out at
// debug, so that they do not drown the agent's own; its warnings and
// errors at their level.
func etcdLogger(l *slog.Logger) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	return zap.New(&slogCore{h: l.Handler()})
}

// etcdLevel is the level of an etcd entry in the agent's log. Its debug
// entries go below slog's debug, which no --log-level shows.
func etcdLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug - 4
	case l == zapcore.InfoLevel:
		return slog.LevelDebug
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// slogCore is a zap core that hands each entry to a slog handler.
type slogCore struct {
	h     slog.Handler
	attrs []slog.Attr     // from With, converted
	keys  map[string]bool // the keys of attrs; never changed once built
}

var _ zapcore.Core = (*slogCore)(nil)

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), etcdLevel(l))
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	keys := cloneKeys(c.keys)
	return &slogCore{h: c.h, attrs: appendFields(slices.Clip(c.attrs), fs, keys), keys: keys}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	r := slog.NewRecord(e.Time, etcdLevel(e.Level), e.Message, 0)
	keys := cloneKeys(c.keys)
	attrs := appendFields(slices.Clip(c.attrs), fs, keys)
	if e.LoggerName != "" && !keys["logger"] {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(attrs...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// appendFields converts zap fields to attributes, in their order, each
// key once: a key seen before (in keys, which it adds to) is dropped, and
// a key siteflip's lines use is renamed (logging.Foreign).
func appendFields(attrs []slog.Attr, fs []zapcore.Field, keys map[string]bool) []slog.Attr {
	for _, f := range fs {
		if f.Type == zapcore.SkipType || f.Type == zapcore.NamespaceType {
			continue
		}
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		names := make([]string, 0, len(enc.Fields))
		for k := range enc.Fields {
			names = append(names, k)
		}
		slices.Sort(names) // one field may give more than one (an error's errorVerbose)
		for _, k := range names {
			key := logging.Foreign("etcd", k)
			if keys[key] {
				continue
			}
			keys[key] = true
			attrs = append(attrs, slog.Any(key, enc.Fields[k]))
		}
	}
	return attrs
}

func cloneKeys(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m)+4)
	for k := range m {
		out[k] = true
	}
	return out
}
