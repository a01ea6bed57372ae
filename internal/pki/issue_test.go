package pki

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)

func TestNameChecks(t *testing.T) {
	tests := []struct {
		name             string
		location, person string // wanted error substrings, "" for none
	}{
		{"brussels", "", ""},
		{"site-2", "", ""},
		{"a_b", "", ""},
		{"Brussels", `(try "brussels")`, ""},
		{"-x", "must be lowercase", ""},
		{"x-", "must be lowercase", ""},
		{"", "empty", "empty"},
		{"ca", "reserved", "reserved"},
		{"CA", `must be lowercase`, "reserved"},
		{"ada@example.com", "must be lowercase", ""},
		{"Ada.Lovelace", "must be lowercase", ""},
		{"../x", "must be lowercase", `has '/'`},
		{".hidden", "must be lowercase", "hidden file"},
		{"a b", "must be lowercase", `has ' '`},
		{strings.Repeat("a", 64), "longer than 63", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: unexpected error %v", what, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: error %v, want one containing %q", what, err, want)
				}
			}
			check("location", CheckLocationName(tt.name), tt.location)
			check("operator", CheckOperatorName(tt.name), tt.person)
		})
	}
}

func TestLeafTemplate(t *testing.T) {
	caEnd := now.Add(1000 * 24 * time.Hour)
	ip := net.ParseIP("10.1.0.10")
	tests := []struct {
		name    string
		leaf    Leaf
		caEnd   time.Time
		wantErr string
		// Checked only without error.
		usage    []x509.ExtKeyUsage
		ou       []string
		notAfter time.Time
		note     string
	}{{
		name:     "location",
		leaf:     Leaf{Name: "brussels", Kind: KindLocation, IPs: []net.IP{ip}, Days: 825},
		caEnd:    caEnd,
		usage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		notAfter: now.Add(825 * 24 * time.Hour),
	}, {
		name:     "operator",
		leaf:     Leaf{Name: "ada", Kind: KindOperator, Role: "admin", Days: 30},
		caEnd:    caEnd,
		usage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		ou:       []string{"siteflip role admin"},
		notAfter: now.Add(30 * 24 * time.Hour),
	}, {
		name:     "outlasts the CA: cut, with a note",
		leaf:     Leaf{Name: "brussels", Kind: KindLocation, IPs: []net.IP{ip}, Days: 2000},
		caEnd:    caEnd,
		usage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		notAfter: caEnd,
		note:     "would outlast the CA",
	}, {
		name:    "CA expired",
		leaf:    Leaf{Name: "brussels", Kind: KindLocation, IPs: []net.IP{ip}, Days: 10},
		caEnd:   now.Add(-time.Hour),
		wantErr: "the CA expired",
	}, {
		name:    "location without address",
		leaf:    Leaf{Name: "brussels", Kind: KindLocation, Days: 10},
		caEnd:   caEnd,
		wantErr: "no address",
	}, {
		name:    "location in capitals",
		leaf:    Leaf{Name: "Brussels", Kind: KindLocation, IPs: []net.IP{ip}, Days: 10},
		caEnd:   caEnd,
		wantErr: "must be lowercase",
	}, {
		name:    "operator without role",
		leaf:    Leaf{Name: "ada", Kind: KindOperator, Days: 10},
		caEnd:   caEnd,
		wantErr: "--role is missing",
	}, {
		name:    "operator with unknown role",
		leaf:    Leaf{Name: "ada", Kind: KindOperator, Role: "root", Days: 10},
		caEnd:   caEnd,
		wantErr: `"root" is not a role`,
	}, {
		name:    "zero days",
		leaf:    Leaf{Name: "ada", Kind: KindOperator, Role: "viewer", Days: 0},
		caEnd:   caEnd,
		wantErr: "at least a day",
	}, {
		name:    "bad DNS name",
		leaf:    Leaf{Name: "brussels", Kind: KindLocation, DNS: []string{"a b"}, Days: 10},
		caEnd:   caEnd,
		wantErr: "not a DNS name",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, note, err := LeafTemplate(tt.leaf, tt.caEnd, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.Subject.CommonName != tt.leaf.Name {
				t.Errorf("CommonName %q, want %q", tmpl.Subject.CommonName, tt.leaf.Name)
			}
			if diff := cmp.Diff(tt.usage, tmpl.ExtKeyUsage); diff != "" {
				t.Errorf("ExtKeyUsage (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.ou, tmpl.Subject.OrganizationalUnit); diff != "" {
				t.Errorf("OU (-want +got):\n%s", diff)
			}
			if !tmpl.NotBefore.Equal(now.Add(-time.Hour)) {
				t.Errorf("NotBefore %s, want an hour before now", tmpl.NotBefore)
			}
			if !tmpl.NotAfter.Equal(tt.notAfter) {
				t.Errorf("NotAfter %s, want %s", tmpl.NotAfter, tt.notAfter)
			}
			if (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) {
				t.Errorf("note %q, want one containing %q", note, tt.note)
			}
		})
	}
}

func TestCheckLocation(t *testing.T) {
	good := &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("10.1.0.10")},
		DNSNames:    []string{"brussels.example"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(time.Hour),
	}
	good.Subject.CommonName = "brussels"
	edit := func(f func(c *x509.Certificate)) *x509.Certificate {
		c := *good
		f(&c)
		return &c
	}
	tests := []struct {
		name  string
		cert  *x509.Certificate
		hosts []string
		want  []string // substrings, one a problem
	}{
		{"good", good, []string{"10.1.0.10", "brussels.example"}, nil},
		{"other name", edit(func(c *x509.Certificate) { c.Subject.CommonName = "Brussels" }), []string{"10.1.0.10"},
			[]string{`common name is "Brussels", not the location's name "brussels"`}},
		{"missing SAN", good, []string{"10.1.0.11", "10.1.0.10"},
			[]string{"not valid for 10.1.0.11 (its SANs: 10.1.0.10, brussels.example)"}},
		{"client only", edit(func(c *x509.Certificate) { c.ExtKeyUsage = c.ExtKeyUsage[1:] }), nil,
			[]string{"needs both"}},
		{"expired", edit(func(c *x509.Certificate) { c.NotAfter = now.Add(-48 * time.Hour) }), nil,
			[]string{"expired on 2026-12-03; renew it with siteflip cert renew brussels"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CheckLocation(tt.cert, "brussels", tt.hosts, now)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d: %q", len(got), len(tt.want), got)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %d: %q, want one containing %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestDaysLeft(t *testing.T) {
	for _, tt := range []struct {
		in   time.Duration
		want int
	}{{0, 0}, {23 * time.Hour, 0}, {25 * time.Hour, 1}, {-time.Minute, -1}, {-25 * time.Hour, -2}} {
		if got := DaysLeft(now.Add(tt.in), now); got != tt.want {
			t.Errorf("DaysLeft(now%+v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestIssueRenewList goes through a CA's life on disk: init, refusal to
// init again, a location and an operator, refusal to overwrite, renewal
// and listing.
func TestIssueRenewList(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := InitCA(dir, "test CA", 3650, now)
	if err != nil {
		t.Fatal(err)
	}
	mode(t, filepath.Join(dir, "ca.key"), 0o600)
	mode(t, filepath.Join(dir, "ca.crt"), 0o644)
	if _, err := InitCA(dir, "test CA", 3650, now); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "move") {
		t.Errorf("second InitCA: %v, want ErrExists saying how to start over", err)
	}
	ca, err = LoadAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	site, err := ca.Issue(Leaf{Name: "brussels", Kind: KindLocation, IPs: []net.IP{net.ParseIP("10.1.0.10")}, DNS: []string{"brussels"}, Days: 825}, now)
	if err != nil {
		t.Fatal(err)
	}
	mode(t, site.KeyPath, 0o600)
	if _, err := ca.Issue(Leaf{Name: "brussels", Kind: KindLocation, IPs: []net.IP{net.ParseIP("10.9.9.9")}, Days: 1}, now); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "cert renew brussels") {
		t.Errorf("second Issue: %v, want ErrExists naming cert renew", err)
	}
	if _, err := ca.Issue(Leaf{Name: "ada", Kind: KindOperator, Role: "operator", Days: 90}, now); err != nil {
		t.Fatal(err)
	}
	if probs := CheckLocation(site.Cert, "brussels", []string{"10.1.0.10", "brussels"}, now); len(probs) > 0 {
		t.Errorf("issued certificate has problems: %q", probs)
	}
	oldKey, _ := os.ReadFile(site.KeyPath)
	later := now.Add(800 * 24 * time.Hour)
	renewed, err := ca.Renew("brussels", 825, later)
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := os.ReadFile(site.KeyPath)
	if string(oldKey) == string(newKey) {
		t.Error("renewal kept the old key")
	}
	if kept, _ := os.ReadFile(site.KeyPath + ".old"); string(kept) != string(oldKey) {
		t.Error("brussels.key.old does not hold the old key")
	}
	mode(t, site.KeyPath+".old", 0o600)
	if diff := cmp.Diff(site.Cert.IPAddresses, renewed.Cert.IPAddresses); diff != "" || renewed.Cert.Subject.CommonName != "brussels" {
		t.Errorf("renewed certificate changed: CN %q, IPs (-old +new):\n%s", renewed.Cert.Subject.CommonName, diff)
	}
	if !renewed.Cert.NotAfter.Equal(later.Add(825 * 24 * time.Hour).Truncate(time.Second)) {
		t.Errorf("renewed NotAfter %s", renewed.Cert.NotAfter)
	}
	if _, err := ca.Renew("nosuch", 825, now); err == nil || !strings.Contains(err.Error(), "cert list") {
		t.Errorf("renewing an unknown name: %v", err)
	}

	list, err := List(dir, later)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range list {
		got = append(got, strings.Join([]string{in.File, in.Name, in.Kind, in.Role, strings.Join(in.Usage, "+")}, " "))
	}
	want := []string{
		"ada.crt ada operator operator client",
		"brussels.crt brussels location  server+client",
		"ca.crt test CA ca  cert-sign",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if list[1].DaysLeft != 825 || !list[1].HasKey {
		t.Errorf("brussels: %d days left, has key %v; want 825, true", list[1].DaysLeft, list[1].HasKey)
	}
}

func TestLoadAuthorityMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadAuthority(dir); err == nil || !strings.Contains(err.Error(), "cert init") {
		t.Errorf("no CA: %v, want an error naming siteflip cert init", err)
	}
	if _, err := InitCA(dir, "x", 10, now); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthority(dir); err == nil || !strings.Contains(err.Error(), "only where the CA's key is kept") {
		t.Errorf("no CA key: %v", err)
	}
}

func mode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}
