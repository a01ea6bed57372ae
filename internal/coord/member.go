// Package coord owns every conversation with etcd: the embedded member each
// location runs, the client, the keys siteflip stores (views, group records,
// the controller election) and the leases that make a dead location's views
// vanish. No other package imports etcd.
package coord

import (
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/siteflip/siteflip/internal/pki"
)

// MemberConfig describes the embedded etcd member of one location.
type MemberConfig struct {
	Name      string
	Dir       string
	PeerURL   string
	ClientURL string
	// Peers maps every member's name (this one included) to its peer URL.
	Peers    map[string]string
	Token    string
	Tick     time.Duration
	Election time.Duration
	// TLS, when set, turns on mutual TLS for peer and client traffic.
	TLS *pki.Files
	// AllowedCNs, when set, are the only certificate common names the
	// member accepts from peers and clients: the locations' own, so that
	// an operator's certificate from the same CA cannot write to etcd.
	AllowedCNs []string
	Logger     *slog.Logger
}

// Member is a running embedded etcd member.
type Member struct {
	etcd *embed.Etcd
}

// StartMember starts the member and returns without waiting for the
// cluster to have a quorum: a location that comes up alone must still serve
// its agent's API and say that it waits for the others.
func StartMember(c MemberConfig) (*Member, error) {
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.Dir
	peer, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd peer url %q: %w", c.PeerURL, err)
	}
	client, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd client url %q: %w", c.ClientURL, err)
	}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	names := make([]string, 0, len(c.Peers))
	for n := range c.Peers {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + c.Peers[n]
	}
	cfg.InitialCluster = strings.Join(parts, ",")
	cfg.InitialClusterToken = c.Token
	cfg.ClusterState = embed.ClusterStateFlagNew // ignored once the data dir holds a member
	cfg.TickMs = uint(c.Tick.Milliseconds())
	cfg.ElectionMs = uint(c.Election.Milliseconds())
	// A cut-off member that comes back must not force a new election.
	cfg.PreVote = true
	// Views are rewritten often; keep the history short.
	cfg.AutoCompactionMode = "revision"
	cfg.AutoCompactionRetention = "1000"
	if c.TLS != nil {
		info := transport.TLSInfo{
			CertFile: c.TLS.Cert, KeyFile: c.TLS.Key, TrustedCAFile: c.TLS.CA,
			ClientCertAuth: true,
			AllowedCNs:     c.AllowedCNs,
		}
		cfg.PeerTLSInfo = info
		cfg.ClientTLSInfo = info
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(c.Logger))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s (data %s, peer %s, client %s): %w", c.Name, c.Dir, c.PeerURL, c.ClientURL, err)
	}
	return &Member{etcd: e}, nil
}

// etcdLogger sends etcd's warnings and errors to the agent's log; its info
// lines would drown everything else.
func etcdLogger(l *slog.Logger) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.LevelKey, enc.CallerKey, enc.StacktraceKey = "", "", "", ""
	return zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(enc),
		zapcore.AddSync(slogWriter{l}),
		zapcore.WarnLevel,
	))
}

// slogWriter turns zap's encoded lines into slog records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("etcd", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// Ready is closed once the member has joined a cluster with a quorum.
func (m *Member) Ready() <-chan struct{} { return m.etcd.Server.ReadyNotify() }

// Err reports a fatal error of the member.
func (m *Member) Err() <-chan error { return m.etcd.Err() }

// Close stops the member. etcd first tries to hand raft leadership to
// another member, which waits for an election timeout or more when the
// others are stopping too; past timeout Close gives up waiting, which is as
// safe as a crash (the WAL is synced at every commit).
func (m *Member) Close(timeout time.Duration) {
	// Without a leader there is nobody to hand leadership to, and etcd's
	// stop waits for raft progress that cannot come: do not wait long.
	if m.etcd.Server.Leader() == 0 {
		timeout = min(timeout, time.Second)
	}
	// A member that never reached a quorum never finishes etcd's Close:
	// its client servers wait for the server to be ready or stopping
	// (etcd-io/etcd#9533). Stopping the server first releases them.
	select {
	case <-m.etcd.Server.ReadyNotify():
	default:
		m.etcd.Server.Stop()
	}
	done := make(chan struct{})
	go func() {
		m.etcd.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}
