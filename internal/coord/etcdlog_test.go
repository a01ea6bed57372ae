package coord

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/testbed"
)

// etcd's entries become the agent's lines: etcd's message is the message,
// its fields keep their keys, a field that would repeat a key of the
// line is renamed (etcd logs one called msg) or, when etcd itself repeats
// it, dropped; info goes out at debug.
func TestEtcdLogger(t *testing.T) {
	var out testbed.Buffer
	log, err := logging.New(&out, logging.FormatJSON, "info")
	if err != nil {
		t.Fatal(err)
	}
	zl := etcdLogger(log.With("site", "brussels", "component", "etcd")).
		With(zap.String("local-member-id", "8e9e05c52164694d"), zap.String("site", "from etcd"))
	zl.Info("starting an etcd server")
	zl.Warn("slow fdatasync", zap.Duration("took", 1500*time.Millisecond), zap.String("msg", "etcd's own"),
		zap.String("local-member-id", "again"))
	zl.Named("raft").Error("failed to reach the peer", zap.Error(errors.New("connection refused")), zap.Strings("peers", []string{"a", "b"}))

	recs := testbed.LogRecords(t, out.String())
	if len(recs) != 2 {
		t.Fatalf("%d lines at info, want 2 (etcd's info entry goes out at debug):\n%s", len(recs), out.String())
	}
	want := []map[string]any{{
		"level": "WARN", "msg": "slow fdatasync", "site": "brussels", "component": "etcd", "etcd_site": "from etcd",
		"local-member-id": "8e9e05c52164694d", "took": "1.5s", "etcd_msg": "etcd's own",
	}, {
		"level": "ERROR", "msg": "failed to reach the peer", "site": "brussels", "component": "etcd", "logger": "raft",
		"error": "connection refused", "peers": []any{"a", "b"},
	}}
	for i, w := range want {
		for k, v := range w {
			if got := recs[i][k]; !equalJSON(got, v) {
				t.Errorf("line %d: %s = %v, want %v", i, k, got, v)
			}
		}
	}

	out = testbed.Buffer{}
	log, _ = logging.New(&out, logging.FormatText, "debug")
	etcdLogger(log).Info("starting an etcd server", zap.String("name", "brussels"))
	etcdLogger(log).Debug("etcd's own debug")
	if got := out.String(); !strings.Contains(got, `level=DEBUG msg="starting an etcd server" name=brussels`) || strings.Contains(got, "etcd's own debug") {
		t.Errorf("at --log-level debug: %s\nwant etcd's info at debug, and not its debug", got)
	}
}

func equalJSON(a, b any) bool {
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok {
		if len(as) != len(bs) {
			return false
		}
		for i := range as {
			if as[i] != bs[i] {
				return false
			}
		}
		return true
	}
	return a == b
}
