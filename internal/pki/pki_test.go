package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var loopback = net.IPv4(127, 0, 0, 1)

func TestGenerateLabFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	got, err := GenerateLab(dir, "siteflip lab CA", []Identity{
		{Name: "brussels", IPs: []net.IP{loopback}, DNS: []string{"brussels.lab"}},
		{Name: "operator"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	want := []Files{
		{CA: ca, Cert: filepath.Join(dir, "brussels.crt"), Key: filepath.Join(dir, "brussels.key")},
		{CA: ca, Cert: filepath.Join(dir, "operator.crt"), Key: filepath.Join(dir, "operator.key")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("GenerateLab files (-want +got):\n%s", diff)
	}

	for path, perm := range map[string]fs.FileMode{
		dir:         0o700 | fs.ModeDir,
		ca:          0o644,
		got[0].Cert: 0o644,
		got[0].Key:  0o600,
		got[1].Key:  0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != perm {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), perm)
		}
	}

	cfg, err := ServerConfig(got[0])
	if err != nil {
		t.Fatal(err)
	}
	leaf := cfg.Certificates[0].Leaf
	if leaf.Subject.CommonName != "brussels" {
		t.Errorf("CommonName = %q, want brussels", leaf.Subject.CommonName)
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage); diff != "" {
		t.Errorf("ExtKeyUsage (-want +got):\n%s", diff)
	}
	if !leaf.IPAddresses[0].Equal(loopback) || leaf.DNSNames[0] != "brussels.lab" {
		t.Errorf("SANs = %v %v, want [127.0.0.1] [brussels.lab]", leaf.IPAddresses, leaf.DNSNames)
	}
	if skew := time.Until(leaf.NotBefore); skew > -50*time.Minute || skew < -70*time.Minute {
		t.Errorf("NotBefore is %v from now, want about -1h", skew)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 365*24*time.Hour {
		t.Errorf("validity %v, want at least a year", life)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: cfg.ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify as a client against the lab CA: %v", err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("MinVersion %x ClientAuth %v, want TLS 1.2 and RequireAndVerifyClientCert", cfg.MinVersion, cfg.ClientAuth)
	}
}

func TestMutualTLS(t *testing.T) {
	lab, err := GenerateLab(t.TempDir(), "lab CA", []Identity{
		{Name: "brussels", IPs: []net.IP{loopback}},
		{Name: "antwerp", IPs: []net.IP{loopback}},
		// Its only IP SAN is not where the server will listen.
		{Name: "elsewhere", IPs: []net.IP{net.ParseIP("192.0.2.10")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	brussels, antwerp, elsewhere := lab[0], lab[1], lab[2]
	foreign, err := GenerateLab(t.TempDir(), "other CA", []Identity{{Name: "mallory", IPs: []net.IP{loopback}}})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		server Files
		// client builds the client's TLS config.
		client  func(t *testing.T) *tls.Config
		wantErr func(error) bool // nil: expect 200
	}{{
		name:   "peer of the same lab",
		server: brussels,
		client: func(t *testing.T) *tls.Config { return mustClient(t, antwerp) },
	}, {
		name:   "no client certificate",
		server: brussels,
		client: func(t *testing.T) *tls.Config {
			cfg := mustClient(t, antwerp)
			cfg.Certificates = nil
			return cfg
		},
		wantErr: errContains("certificate required"),
	}, {
		name:   "client certificate from another CA",
		server: brussels,
		// It trusts our server, but presents a certificate our CA did not sign.
		client: func(t *testing.T) *tls.Config {
			cfg := mustClient(t, Files{CA: antwerp.CA, Cert: foreign[0].Cert, Key: foreign[0].Key})
			// Go's client withholds a certificate whose issuer the server did
			// not list as acceptable; force it, so the server must reject it.
			cert := cfg.Certificates[0]
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			return cfg
		},
		wantErr: errContains("unknown certificate authority"),
	}, {
		name:   "server IP SAN does not match dialled address",
		server: elsewhere,
		client: func(t *testing.T) *tls.Config { return mustClient(t, antwerp) },
		wantErr: func(err error) bool {
			var he x509.HostnameError
			return errors.As(err, &he)
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startServer(t, tt.server)
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: tt.client(t)}}
			t.Cleanup(client.CloseIdleConnections)

			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if tt.wantErr != nil {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET succeeded with status %s, want a TLS failure", resp.Status)
				}
				if !tt.wantErr(err) {
					t.Fatalf("GET error %v is not the expected kind", err)
				}
				t.Logf("GET failed as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "antwerp" {
				t.Fatalf("GET = %s %q, want 200 \"antwerp\"", resp.Status, body)
			}
		})
	}
}

// errContains matches on text because a TLS alert received from the peer
// has no exported type.
func errContains(s string) func(error) bool {
	return func(err error) bool { return strings.Contains(err.Error(), s) }
}

func mustClient(t *testing.T, f Files) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(f, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServer serves, on 127.0.0.1 only, the CommonName of the client's
// certificate, so the test also sees that the server verified who called.
func startServer(t *testing.T, f Files) string {
	t.Helper()
	cfg, err := ServerConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = cfg
	// Rejected handshakes are the point of some cases; keep them out of the log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestGenerateLabBadInput(t *testing.T) {
	ok := Identity{Name: "brussels", IPs: []net.IP{loopback}}
	tests := []struct {
		name    string
		caName  string
		ids     []Identity
		wantErr string
	}{
		{"empty name", "CA", []Identity{ok, {Name: ""}}, "identity 1: name is empty"},
		{"slash", "CA", []Identity{{Name: "../etc/passwd"}}, "path separator"},
		{"backslash", "CA", []Identity{{Name: `a\b`}}, "path separator"},
		{"dot dot", "CA", []Identity{{Name: ".."}}, "not a usable file name"},
		{"duplicate", "CA", []Identity{ok, {Name: "antwerp"}, ok}, `identity "brussels": duplicate name`},
		{"duplicate by case", "CA", []Identity{ok, {Name: "Brussels"}}, `duplicate name (clashes with "brussels")`},
		{"clashes with CA file", "CA", []Identity{{Name: "ca"}}, "reserved for the lab CA"},
		{"empty CA name", "", []Identity{ok}, "CA name is empty"},
		{"bad IP", "CA", []Identity{{Name: "x", IPs: []net.IP{{1, 2, 3}}}}, "invalid IP SAN"},
		{"empty DNS", "CA", []Identity{{Name: "x", DNS: []string{""}}}, "empty DNS SAN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "lab")
			_, err := GenerateLab(dir, tt.caName, tt.ids)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("GenerateLab error = %v, want one containing %q", err, tt.wantErr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("bad input still touched %s (stat: %v)", dir, err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	lab, err := GenerateLab(dir, "lab CA", []Identity{{Name: "brussels"}, {Name: "antwerp"}})
	if err != nil {
		t.Fatal(err)
	}
	good := lab[0]
	missing := filepath.Join(dir, "missing.pem")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	with := func(edit func(*Files)) Files {
		f := good
		edit(&f)
		return f
	}

	tests := []struct {
		name  string
		files Files
		want  []string // substrings of the error
	}{
		{"missing CA", with(func(f *Files) { f.CA = missing }), []string{"CA bundle " + missing, "no such file"}},
		{"missing cert", with(func(f *Files) { f.Cert = missing }), []string{"certificate " + missing, "no such file"}},
		{"missing key", with(func(f *Files) { f.Key = missing }), []string{"private key " + missing, "no such file"}},
		{"CA path unset", with(func(f *Files) { f.CA = "" }), []string{"CA bundle: no file given"}},
		{"CA not PEM", with(func(f *Files) { f.CA = junk }), []string{"CA bundle " + junk, "no PEM CERTIFICATE block"}},
		{"cert not PEM", with(func(f *Files) { f.Cert = junk }), []string{"certificate " + junk, "no PEM CERTIFICATE block"}},
		{"key not PEM", with(func(f *Files) { f.Key = junk }), []string{"private key " + junk, "no PEM PRIVATE KEY block"}},
		{"key is a certificate", with(func(f *Files) { f.Key = good.Cert }), []string{"private key " + good.Cert, "no PEM PRIVATE KEY block"}},
		{"key of another identity", with(func(f *Files) { f.Key = lab[1].Key }), []string{"private key " + lab[1].Key + " does not match certificate " + good.Cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, load := range []struct {
				name string
				fn   func(Files) (*tls.Config, error)
			}{
				{"ServerConfig", ServerConfig},
				{"ClientConfig", func(f Files) (*tls.Config, error) { return ClientConfig(f, "") }},
			} {
				cfg, err := load.fn(tt.files)
				if err == nil {
					t.Fatalf("%s returned %v and no error", load.name, cfg)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s error %q does not contain %q", load.name, err, w)
					}
				}
			}
		})
	}

	// A missing file stays recognisable to callers that branch on it.
	_, err = ServerConfig(with(func(f *Files) { f.CA = missing }))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing CA error %v is not fs.ErrNotExist", err)
	}
}
