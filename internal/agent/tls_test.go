package agent

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/pki"
)

// TestOwnCredentialOnly: on a machine that holds only the CA and brussels's
// pair, brussels's agent gets its TLS configurations and the locations'
// names, and antwerp's agent is refused with the topology's position.
func TestOwnCredentialOnly(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "pki"), "test CA", 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(pki.Leaf{Name: "brussels", Kind: pki.KindLocation, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Days: 5}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("tls: {ca_file: pki/ca.crt}\nsites:\n")
	for i, n := range []string{"brussels", "antwerp", "frankfurt"} {
		b.WriteString("  - name: " + n + "\n")
		if n == "frankfurt" {
			b.WriteString("    role: witness\n")
		}
		port := 7400 + 10*i
		b.WriteString("    agent: {address: \"127.0.0.1:" + itoa(port) + "\"}\n")
		b.WriteString("    etcd: {peer_url: \"https://127.0.0.1:" + itoa(port+2) + "\", client_url: \"https://127.0.0.1:" + itoa(port+3) + "\"}\n")
		b.WriteString("    tls: {cert_file: pki/" + n + ".crt, key_file: pki/" + n + ".key}\n")
	}
	path := filepath.Join(dir, "siteflip.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := config.Load(path, driver.Types())
	if err != nil {
		t.Fatalf("load with only brussels's files: %v", err)
	}
	brussels, _ := topo.Site("brussels")
	if server, client, err := tlsConfigs(topo, brussels); err != nil || server == nil || client == nil {
		t.Errorf("brussels's TLS: %v", err)
	}
	cns, err := siteCNs(topo)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"brussels", "antwerp", "frankfurt"}; !cmp.Equal(cns, want) {
		t.Errorf("siteCNs = %v, want %v", cns, want)
	}
	antwerp, _ := topo.Site("antwerp")
	_, _, err = tlsConfigs(topo, antwerp)
	if err == nil || !strings.Contains(err.Error(), path+":10:10: sites[1].tls:") || !strings.Contains(err.Error(), "the agent of antwerp cannot use its credential") {
		t.Errorf("antwerp's agent without its files: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
