package coord

import (
	"errors"
	"fmt"
	"path/filepath"
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

// A real member's log, from start to stop, through the agent's JSON
// format: every line has each key once, etcd's message as the message,
// and at info only what etcd warns of.
func TestEtcdLoggerMember(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: starts an embedded etcd member; run without -short")
	}
	var out testbed.Buffer
	log, err := logging.New(&out, logging.FormatJSON, "debug")
	if err != nil {
		t.Fatal(err)
	}
	ports := testbed.FreePorts(t, 2)
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	m, err := StartMember(MemberConfig{
		Name: "a", Dir: filepath.Join(t.TempDir(), "etcd"), PeerURL: peer,
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		Peers:     map[string]string{"a": peer}, Token: "logs", Tick: testTick, Election: testElection,
		Logger: log.With("site", "brussels", "component", "etcd"),
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("member not ready after 20 s")
	}
	m.Close(5 * time.Second)

	recs := testbed.LogRecords(t, out.String())
	if len(recs) < 10 {
		t.Fatalf("%d lines from a member's start and stop at debug, want many:\n%s", len(recs), out.String())
	}
	for _, r := range recs {
		if r["component"] != "etcd" || r["site"] != "brussels" {
			t.Errorf("line %v: want component etcd, site brussels", r)
		}
		if msg, _ := r["msg"].(string); msg == "" || msg == "etcd" {
			t.Errorf("line %v: the message is not etcd's", r)
		}
	}
}
