package coord

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/testbed"
)

// lockedBuffer is a log sink the member's goroutines may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMemberHTTPOnItsOwnSocket: the client URL serves gRPC alone and etcd's
// HTTP endpoints answer on a unix socket in the member's directory, with
// the same mutual TLS, so etcd no longer warns at start that one port for
// both "is not recommended for production"; nor, with no auth tokens, that
// its simple tokens are not signed.
func TestMemberHTTPOnItsOwnSocket(t *testing.T) {
	requireCluster(t)
	files, err := pki.GenerateLab(t.TempDir(), "coord test CA", []pki.Identity{
		{Name: "a", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, {Name: "operator"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	ports := testbed.FreePorts(t, 2)
	peer := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	dir := filepath.Join(t.TempDir(), "etcd")
	m, err := StartMember(MemberConfig{
		Name: "a", Dir: dir, PeerURL: peer,
		ClientURL: fmt.Sprintf("https://127.0.0.1:%d", ports[1]),
		Peers:     map[string]string{"a": peer}, Token: "socket",
		Tick: testTick, Election: testElection,
		TLS: &files[0], AllowedCNs: []string{"a", "operator"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(memberCloseTimeout)
	select {
	case <-m.Ready():
	case err := <-m.Err():
		t.Fatal(err)
	case <-time.After(readyTimeout):
		t.Fatalf("member not ready after %v", readyTimeout)
	}

	tc, err := pki.ClientConfig(files[1], "")
	if err != nil {
		t.Fatal(err)
	}
	tc.InsecureSkipVerify = true // a unix socket has no address to verify; the client certificate is what counts
	sock := filepath.Join(dir, httpSocket)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "unix", sock)
			if err != nil {
				return nil, err
			}
			tlsc := tls.Client(c, tc)
			return tlsc, tlsc.HandshakeContext(ctx)
		},
	}}
	resp, err := client.Get("https://etcd/health")
	if err != nil {
		t.Fatalf("GET /health on %s: %v", sock, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
		t.Errorf("GET /health on the socket: %s %s", resp.Status, body)
	}
	l := logs.String()
	if strings.Contains(l, "single port") || strings.Contains(l, "not recommended for production") {
		t.Errorf("etcd still warns about one port for gRPC and HTTP:\n%s", l)
	}
	if strings.Contains(l, "simple token") {
		t.Errorf("etcd still warns about its auth tokens:\n%s", l)
	}
}

func TestHTTPSocketURL(t *testing.T) {
	u, ok := httpSocketURL("/var/lib/siteflip/etcd", true)
	if !ok || u.String() != "unixs:///var/lib/siteflip/etcd/http.sock" {
		t.Errorf("got %s %v", u.String(), ok)
	}
	if u, ok := httpSocketURL("/"+strings.Repeat("d", 100), false); ok {
		t.Errorf("a path longer than a unix socket allows: got %s, want none", u.String())
	}
}
