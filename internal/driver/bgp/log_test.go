package bgp

import (
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/testbed"
)

// GoBGP's records as the agent writes them: a session's changes at info
// in siteflip's words, GoBGP's other info at debug, warnings as they are;
// keys in snake_case, the neighbor as peer, each key once.
func TestGoBGPLog(t *testing.T) {
	peer := []any{slog.String("Topic", "Peer"), slog.String("Key", "192.0.2.1")}
	tests := []struct {
		name  string
		level string // the agent's --log-level
		with  []any  // GoBGP's logger's context (its peer logger's Topic and Key)
		rec   slog.Level
		msg   string
		args  []any
		want  map[string]any // nil: not written
	}{
		{
			name: "state change at debug goes out at info", level: "info", with: peer,
			rec: slog.LevelDebug, msg: "state changed", args: []any{slog.String("old", "BGP_FSM_ESTABLISHED"), slog.String("new", "BGP_FSM_IDLE"), slog.String("reason", "hold-timer-expired")},
			want: map[string]any{"level": "INFO", "msg": "bgp session state changed", "peer": "192.0.2.1", "topic": "Peer",
				"old": "BGP_FSM_ESTABLISHED", "new": "BGP_FSM_IDLE", "reason": "hold-timer-expired"},
		},
		{
			name: "peer up", level: "info", with: peer, rec: slog.LevelInfo, msg: "Peer Up",
			want: map[string]any{"level": "INFO", "msg": "bgp session established", "peer": "192.0.2.1", "topic": "Peer"},
		},
		{
			name: "peer down", level: "info", with: peer, rec: slog.LevelInfo, msg: "Peer Down",
			args: []any{slog.String("State", "BGP_FSM_ESTABLISHED"), slog.String("Reason", "notification-received")},
			want: map[string]any{"level": "INFO", "msg": "bgp session down", "peer": "192.0.2.1", "topic": "Peer",
				"state": "BGP_FSM_ESTABLISHED", "reason": "notification-received"},
		},
		{
			name: "notification", level: "info", with: peer, rec: slog.LevelInfo, msg: "received notification",
			args: []any{slog.Int("Code", 6), slog.Int("Subcode", 4)},
			want: map[string]any{"level": "INFO", "msg": "bgp notification received", "peer": "192.0.2.1", "topic": "Peer", "code": 6.0, "subcode": 4.0},
		},
		{
			name: "GoBGP's other info is chatter", level: "info", with: peer, rec: slog.LevelInfo, msg: "Add a peer configuration",
		},
		{
			name: "chatter shows at debug", level: "debug", rec: slog.LevelInfo, msg: "Add a peer configuration",
			args: []any{slog.String("Topic", "Peer"), slog.String("Key", "192.0.2.1")},
			want: map[string]any{"level": "DEBUG", "msg": "Add a peer configuration", "peer": "192.0.2.1", "topic": "Peer"},
		},
		{
			name: "debug chatter", level: "info", with: peer, rec: slog.LevelDebug, msg: "try to connect",
		},
		{
			name: "debug chatter at debug", level: "debug", with: peer, rec: slog.LevelDebug, msg: "failed to connect",
			args: []any{slog.String("Error", "connection refused")},
			want: map[string]any{"level": "DEBUG", "msg": "failed to connect", "peer": "192.0.2.1", "topic": "Peer", "error": "connection refused"},
		},
		{
			name: "a warning stays one", level: "info", with: peer, rec: slog.LevelWarn, msg: "hold timer expired",
			args: []any{slog.String("State", "BGP_FSM_ESTABLISHED")},
			want: map[string]any{"level": "WARN", "msg": "hold timer expired", "peer": "192.0.2.1", "topic": "Peer", "state": "BGP_FSM_ESTABLISHED"},
		},
		{
			name: "at warn, sessions are not written", level: "warn", with: peer, rec: slog.LevelInfo, msg: "Peer Down",
		},
		{
			name: "the neighbor named twice is written once", level: "info", with: peer, rec: slog.LevelWarn, msg: "Mismatched local address",
			args: []any{slog.String("Peer", "192.0.2.1"), slog.String("Err", "boom"), slog.String("Error", "again"),
				slog.String("RemoteAddress", "192.0.2.1:179"), slog.String("adminState", "up"), slog.String("ClusterID", "1.2.3.4")},
			want: map[string]any{"level": "WARN", "msg": "Mismatched local address", "peer": "192.0.2.1", "topic": "Peer", "error": "boom",
				"remote_address": "192.0.2.1:179", "admin_state": "up", "cluster_id": "1.2.3.4"},
		},
		{
			name: "keys of siteflip's lines are not taken", level: "info", rec: slog.LevelError, msg: "code logic bug",
			args: []any{slog.String("Component", "x"), slog.String("Msg", "y"), slog.String("Site", "z")},
			want: map[string]any{"level": "ERROR", "msg": "code logic bug", "component": "bgp", "site": "brussels",
				"bgp_component": "x", "bgp_msg": "y", "bgp_site": "z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out testbed.Buffer
			agent, err := logging.New(&out, logging.FormatJSON, tt.level)
			if err != nil {
				t.Fatal(err)
			}
			base := agent.With("site", "brussels", "component", "bgp")
			gobgp := slog.New(gobgpHandler{h: base.Handler()}).With(tt.with...)
			gobgp.Log(t.Context(), tt.rec, tt.msg, tt.args...)
			recs := testbed.LogRecords(t, out.String())
			if tt.want == nil {
				if len(recs) != 0 {
					t.Fatalf("written: %s", out.String())
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d lines, want 1:\n%s", len(recs), out.String())
			}
			got := recs[0]
			delete(got, "time")
			want := map[string]any{"site": "brussels", "component": "bgp"}
			for k, v := range tt.want {
				want[k] = v
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("line (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{
		"State": "state", "RemoteAddress": "remote_address", "adminState": "admin_state", "ClusterID": "cluster_id",
		"VRF": "vrf", "OriginatorID": "originator_id", "IDFoo": "id_foo", "old": "old", "AddressFamily": "address_family", "Ipv4Addr": "ipv4_addr",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%s) = %s, want %s", in, got, want)
		}
	}
}
