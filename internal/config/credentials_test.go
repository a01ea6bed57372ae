package config_test

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/pki"
)

// tlsTopology writes good.yaml with TLS on, each location's files named
// pki/NAME.crt and pki/NAME.key and the operator's pki/ada.*, and makes a
// CA in pki. It returns the topology's path and the CA.
func tlsTopology(t *testing.T) (string, *pki.Authority) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "pki"), "test CA", 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	topo := strings.ReplaceAll(edited(t, "sites:", "tls: {ca_file: pki/ca.crt}\noperator: {cert_file: pki/ada.crt, key_file: pki/ada.key}\naccess: [{identity: ada, role: admin}]\nsites:"), "http://", "https://")
	for _, n := range []string{"brussels", "antwerp", "frankfurt"} {
		topo = strings.Replace(topo, "  - name: "+n+"\n", "  - name: "+n+"\n    tls: {cert_file: pki/"+n+".crt, key_file: pki/"+n+".key}\n", 1)
	}
	path := filepath.Join(dir, "shop.yaml")
	if err := os.WriteFile(path, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, ca
}

func issue(t *testing.T, ca *pki.Authority, l pki.Leaf) {
	t.Helper()
	if l.Days == 0 {
		l.Days = 5
	}
	if _, err := ca.Issue(l, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func site(name, ip string) pki.Leaf {
	return pki.Leaf{Name: name, Kind: pki.KindLocation, IPs: []net.IP{net.ParseIP(ip)}}
}

func problems(probs []config.Problem) []string {
	var out []string
	for _, p := range probs {
		out = append(out, p.Field+": "+p.Msg)
	}
	return out
}

// TestOwnKeyOnly: a machine that holds only the CA and its own location's
// files loads the topology; what it lacks shows only when it is used.
func TestOwnKeyOnly(t *testing.T) {
	path, ca := tlsTopology(t)
	issue(t, ca, site("brussels", "10.1.0.10"))
	// Only brussels's pair and the CA are here: no other location's, no
	// operator's.
	topo, err := config.Load(path, driver.Types())
	if err != nil {
		t.Fatalf("a location's machine cannot load the topology: %v", err)
	}
	if got := topo.KeysHere(); !cmp.Equal(got, []string{"brussels"}) {
		t.Errorf("KeysHere = %v, want [brussels]", got)
	}
	if probs := topo.CheckCredentials([]string{"brussels"}, nil, ""); len(probs) > 0 {
		t.Errorf("brussels's own credential: %q", problems(probs))
	}

	got := problems(topo.CheckCredentials([]string{"antwerp"}, &topo.Operator, "operator"))
	want := []string{
		"operator: the command line cannot use this credential: certificate " + filepath.Join(filepath.Dir(path), "pki", "ada.crt") + ": no such file or directory",
		"sites[1].tls: the agent of antwerp cannot use its credential: certificate " + filepath.Join(filepath.Dir(path), "pki", "antwerp.crt") + ": no such file or directory",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
	if probs := topo.CheckCredentials(nil, &config.Credential{}, "operator"); len(probs) != 1 || !strings.Contains(probs[0].Msg, "give --cert and --key") {
		t.Errorf("no operator credential at all: %q", problems(probs))
	}
	if probs := topo.CheckCredentials([]string{"paris"}, nil, ""); len(probs) != 1 || !strings.Contains(probs[0].Msg, `no location "paris"`) {
		t.Errorf("unknown location: %q", problems(probs))
	}

	// The operator's machine: the CA and ada's pair.
	issue(t, ca, pki.Leaf{Name: "ada", Kind: pki.KindOperator, Role: "admin"})
	if probs := topo.CheckCredentials(nil, &topo.Operator, "operator"); len(probs) > 0 {
		t.Errorf("ada's credential: %q", problems(probs))
	}
	// A key that is not the certificate's.
	dir := filepath.Join(filepath.Dir(path), "pki")
	if err := os.Rename(filepath.Join(dir, "ada.key"), filepath.Join(dir, "brussels.key")); err != nil {
		t.Fatal(err)
	}
	if probs := topo.CheckCredentials([]string{"brussels"}, nil, ""); len(probs) != 1 || !strings.Contains(probs[0].Msg, "does not match certificate") {
		t.Errorf("mismatched key: %q", problems(probs))
	}
}

// TestLocationCertificates: a location's certificate that is present is
// checked when the topology loads: name, addresses, usage, CA.
func TestLocationCertificates(t *testing.T) {
	path, ca := tlsTopology(t)
	dir := filepath.Dir(path)
	issue(t, ca, site("brussels", "10.1.0.10"))                                                // good
	issue(t, ca, site("antwerp", "10.2.0.99"))                                                 // wrong address
	issue(t, ca, pki.Leaf{Name: "frankfurt", Kind: pki.KindOperator, Role: "viewer", Days: 5}) // client only, no SAN
	other, err := pki.InitCA(filepath.Join(dir, "other"), "other CA", 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, probs, err := config.Check(path, driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	got := problems(config.Errors(probs))
	want := []string{
		"sites[1].tls.cert_file: " + filepath.Join(dir, "pki/antwerp.crt") + ": it is not valid for 10.2.0.10 (its SANs: 10.2.0.99)",
		"sites[2].tls.cert_file: " + filepath.Join(dir, "pki/frankfurt.crt") + ": it is not valid for 10.3.0.10 (its SANs: none)",
		"sites[2].tls.cert_file: " + filepath.Join(dir, "pki/frankfurt.crt") + ": it lacks server or client authentication",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}

	// A certificate of another CA, with another name.
	for _, f := range []string{"antwerp.crt", "antwerp.key", "frankfurt.crt", "frankfurt.key"} {
		os.Remove(filepath.Join(dir, "pki", f))
	}
	other.Dir = filepath.Join(dir, "pki")
	issue(t, other, site("antwerp-2", "10.2.0.10"))
	if err := os.Rename(filepath.Join(dir, "pki", "antwerp-2.crt"), filepath.Join(dir, "pki", "antwerp.crt")); err != nil {
		t.Fatal(err)
	}
	_, probs, err = config.Check(path, driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	got = problems(config.Errors(probs))
	if len(got) != 2 ||
		!strings.Contains(got[0], `its common name is "antwerp-2", not the location's name "antwerp"`) ||
		!strings.Contains(got[1], "not signed by the CA of tls.ca_file") {
		t.Errorf("got:\n%s", strings.Join(got, "\n"))
	}
	if slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "sites[0]") }) {
		t.Error("brussels's good certificate was reported")
	}
}
