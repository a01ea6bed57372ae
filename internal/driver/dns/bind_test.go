package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/testbed"
)

// bind is a BIND 9 server started for one test, primary for one dynamic
// zone that key may update.
type bind struct {
	addr  string // 127.0.0.1:port, UDP and TCP
	zone  string
	key   TSIG
	start time.Duration // from exec to the first answer
}

const (
	bindZone   = "shop.example."
	bindSecret = "c2l0ZWZsaXAtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyE=" // base64 of 32 bytes
)

// bindBinary returns the named binary, or skips the test with what to do.
func bindBinary(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("named")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/named"); serr != nil {
			tb.Skip("BIND is not installed (no named in PATH or /usr/sbin): apt-get install bind9 bind9-dnsutils")
		}
		path = "/usr/sbin/named"
	}
	if os.Geteuid() != 0 {
		tb.Skip("the BIND tests run named as the bind user and need root")
	}
	if _, err := user.Lookup("bind"); err != nil {
		tb.Skip("no bind user: apt-get install bind9")
	}
	return path
}

// startBIND starts named in the foreground on a free port of 127.0.0.1 and
// stops it, and removes its files, when the test ends.
func startBIND(tb testing.TB) *bind {
	tb.Helper()
	named := bindBinary(tb)
	u, _ := user.Lookup("bind")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// named drops to the bind user before it reads its configuration and
	// wants its directory writable; the journal of dynamic updates goes
	// next to the zone file, so the zone folder must be writable too.
	dir, err := os.MkdirTemp("", "siteflip-dns-bind-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("remove %s: %v", dir, err)
		}
	})
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(os.Chmod(dir, 0o755))
	must(os.Chown(dir, uid, gid))
	zoneDir := filepath.Join(dir, "zones")
	must(os.Mkdir(zoneDir, 0o755))
	must(os.Chown(zoneDir, uid, gid))
	zoneFile := filepath.Join(zoneDir, "shop.example.db")
	must(os.WriteFile(zoneFile, []byte(`$TTL 60
@	IN SOA ns.shop.example. hostmaster.shop.example. 1 3600 600 86400 5
	IN NS ns.shop.example.
ns	IN A 127.0.0.1
`), 0o644))
	must(os.Chown(zoneFile, uid, gid))

	port := testbed.FreePort(tb)
	key := TSIG{Name: "siteflip.", Algorithm: "hmac-sha256", Secret: bindSecret}
	conf := fmt.Sprintf(`options {
	directory %[1]q;
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	pid-file none;
	session-keyfile none;
	managed-keys-directory %[1]q;
	recursion no;
	dnssec-validation no;
	notify no;
	allow-query { any; };
};
controls { };
key "siteflip." {
	algorithm hmac-sha256;
	secret %[3]q;
};
key "other." {
	algorithm hmac-sha256;
	secret "b3RoZXIta2V5LXRoYXQtbWF5LW5vdC11cGRhdGUtYW55"; 
};
zone %[4]q {
	type primary;
	file %[5]q;
	update-policy { grant siteflip. zonesub ANY; };
};
`, dir, port, key.Secret, bindZone, zoneFile)
	confFile := filepath.Join(dir, "named.conf")
	must(os.WriteFile(confFile, []byte(conf), 0o644))

	var out testbed.Buffer
	cmd := exec.Command(named, "-g", "-n", "1", "-u", "bind", "-c", confFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	must(cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			tb.Errorf("named did not stop on SIGTERM within 10s; killed it")
		}
		if err := syscall.Kill(cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			tb.Errorf("named (pid %d) is still there after stopping it", cmd.Process.Pid)
		}
	})

	b := &bind{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), zone: bindZone, key: key}
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := new(mdns.Msg)
		m.SetQuestion(bindZone, mdns.TypeSOA)
		r, _, err := (&mdns.Client{Net: "udp", Timeout: 200 * time.Millisecond}).Exchange(m, b.addr)
		if err == nil && r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 1 {
			break
		}
		select {
		case <-exited:
			tb.Fatalf("named exited at start: %s\n%s", cmd.ProcessState, out.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("named does not answer on %s after 15s:\n%s", b.addr, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.start = time.Since(t0)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("named output:\n%s", out.String())
		}
	})
	return b
}

func TestBIND(t *testing.T) {
	b := startBIND(t)
	t.Logf("named answered %s after start", b.start.Round(time.Millisecond))
	name := "db." + b.zone
	brussels := []netip.Addr{netip.MustParseAddr("10.1.0.20"), netip.MustParseAddr("2001:db8:1::20")}
	antwerp := []netip.Addr{netip.MustParseAddr("10.2.0.20")}

	t.Run("signed update is visible", func(t *testing.T) {
		ctx := t.Context()
		if err := Update(ctx, b.addr, b.zone, name, brussels, 5*time.Second, b.key); err != nil {
			t.Fatal(err)
		}
		got, ttl, err := Lookup(ctx, b.addr, name)
		if err != nil {
			t.Fatal(err)
		}
		if !equalAddrs(got, brussels) || ttl != 5*time.Second {
			t.Fatalf("after the update to brussels: %v ttl %s, want %v ttl 5s", got, ttl, brussels)
		}
		// The second update replaces both RRsets: the AAAA goes too.
		if err := Update(ctx, b.addr, b.zone, name, antwerp, 7*time.Second, b.key); err != nil {
			t.Fatal(err)
		}
		got, ttl, err = Lookup(ctx, b.addr, name)
		if err != nil {
			t.Fatal(err)
		}
		if !equalAddrs(got, antwerp) || ttl != 7*time.Second {
			t.Fatalf("after the update to antwerp: %v ttl %s, want %v ttl 7s", got, ttl, antwerp)
		}
	})

	t.Run("unsigned update is refused", func(t *testing.T) {
		err := Update(t.Context(), b.addr, b.zone, name, brussels, 5*time.Second, TSIG{})
		wantErr(t, err, ErrRefused, "refused the unsigned update", "update-policy")
		stillAntwerp(t, b, name, antwerp)
	})

	t.Run("key without permission is refused", func(t *testing.T) {
		other := TSIG{Name: "other.", Algorithm: "hmac-sha256", Secret: "b3RoZXIta2V5LXRoYXQtbWF5LW5vdC11cGRhdGUtYW55"}
		err := Update(t.Context(), b.addr, b.zone, name, brussels, 5*time.Second, other)
		wantErr(t, err, ErrRefused, "does its update-policy (or allow-update) allow key other.")
		stillAntwerp(t, b, name, antwerp)
	})

	t.Run("wrong secret", func(t *testing.T) {
		bad := b.key
		bad.Secret = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="
		err := Update(t.Context(), b.addr, b.zone, name, brussels, 5*time.Second, bad)
		wantErr(t, err, ErrKey, "BADSIG", "secret")
		stillAntwerp(t, b, name, antwerp)
	})

	t.Run("unknown key", func(t *testing.T) {
		bad := b.key
		bad.Name = "nobody."
		err := Update(t.Context(), b.addr, b.zone, name, brussels, 5*time.Second, bad)
		wantErr(t, err, ErrKey, "BADKEY", "nobody.")
		stillAntwerp(t, b, name, antwerp)
	})

	t.Run("zone the server does not hold", func(t *testing.T) {
		err := Update(t.Context(), b.addr, "other.example.", "db.other.example.", brussels, 5*time.Second, b.key)
		wantErr(t, err, ErrNotAuthoritative, "NOTAUTH", "other.example.")
	})

	t.Run("lookup of a missing name", func(t *testing.T) {
		got, _, err := Lookup(t.Context(), b.addr, "nothing."+b.zone)
		if err != nil || len(got) != 0 {
			t.Fatalf("Lookup of a missing name = %v, %v; want no addresses and no error", got, err)
		}
	})

	t.Run("lookup outside the server's zones", func(t *testing.T) {
		_, _, err := Lookup(t.Context(), b.addr, "db.elsewhere.example.")
		wantErr(t, err, ErrNotAuthoritative, "REFUSED")
	})
}

func stillAntwerp(t *testing.T, b *bind, name string, want []netip.Addr) {
	t.Helper()
	got, _, err := Lookup(t.Context(), b.addr, name)
	if err != nil {
		t.Fatal(err)
	}
	if !equalAddrs(got, want) {
		t.Fatalf("a rejected update changed the record: %v, want %v", got, want)
	}
}

func wantErr(t *testing.T, err, target error, words ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v; want one wrapping %q", err, target)
	}
	t.Log(err)
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[netip.Addr]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// BenchmarkUpdateVisible measures a signed update until a query sees it
// at BIND, alternating between two sites' addresses.
func BenchmarkUpdateVisible(b *testing.B) {
	srv := startBIND(b)
	name := "db." + srv.zone
	sites := [][]netip.Addr{{netip.MustParseAddr("10.1.0.20")}, {netip.MustParseAddr("10.2.0.20")}}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		want := sites[i%2]
		i++
		if err := Update(ctx, srv.addr, srv.zone, name, want, 5*time.Second, srv.key); err != nil {
			b.Fatal(err)
		}
		for {
			got, _, err := Lookup(ctx, srv.addr, name)
			if err != nil {
				b.Fatal(err)
			}
			if equalAddrs(got, want) {
				break
			}
		}
	}
	b.ReportMetric(float64(srv.start.Microseconds())/1000, "bind-start-ms")
}
