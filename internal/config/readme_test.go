package config_test

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/pki"
)

// readmeTopology returns the first yaml block under the README's heading
// "## The topology file": the example people copy.
func readmeTopology(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const heading = "\n## The topology file\n"
	_, after, ok := strings.Cut(string(b), heading)
	if !ok {
		t.Fatalf("README.md has no heading %q", strings.TrimSpace(heading))
	}
	_, block, ok := strings.Cut(after, "\n```yaml\n")
	if !ok {
		t.Fatal("README.md: no ```yaml block under the topology heading")
	}
	block, _, ok = strings.Cut(block, "\n```")
	if !ok {
		t.Fatal("README.md: the topology's yaml block is not closed")
	}
	return block + "\n"
}

// fileFields collects every value of a key ending in _file in the
// document: certificates, keys and secrets the example names.
func fileFields(n *yaml.Node, out *[]string) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if strings.HasSuffix(k.Value, "_file") && v.Kind == yaml.ScalarNode {
				*out = append(*out, v.Value)
			}
		}
	}
	for _, c := range n.Content {
		fileFields(c, out)
	}
}

// belgian are the geography warnings the examples' sites deserve: Brussels
// and Antwerp are 41 km apart, and one regional disaster takes both.
var belgian = []string{
	"sites[1].location: sites brussels and antwerp are 41 km apart, closer than min_site_distance (100 km)",
	"groups[0].sites: group webshop: a disaster of 21 km radius around 51.03,4.38 takes brussels and antwerp",
}

// TestReadmeTopology keeps the README's topology example valid: copied as
// it is into a directory where the files it names exist (relative paths
// only: certificates made for its locations and operator, placeholders for
// secrets; nothing in it is edited), it passes check with no error and no
// warning but the geography of its sites, which is true.
func TestReadmeTopology(t *testing.T) {
	checkExample(t, readmeTopology(t), "README.md's topology example",
		belgian[0], belgian[1]+"; levels that take it out: major; no failover survives that")
}

// TestPackagedExample: the example topology the Debian package installs
// as /etc/siteflip/siteflip.yaml.example passes check too.
func TestPackagedExample(t *testing.T) {
	b, err := os.ReadFile("../../deploy/etc/siteflip.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	checkExample(t, string(b), "deploy/etc/siteflip.yaml.example", belgian...)
}

// checkExample writes text to a directory with the files it names and
// fails the test on any problem check finds but the geography warnings
// given ("field: message" prefixes), each of which it must find.
func checkExample(t *testing.T, text, what string, geography ...string) {
	t.Helper()
	dir := t.TempDir()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%s is not YAML: %v", what, err)
	}
	var files []string
	fileFields(&doc, &files)
	if len(files) == 0 {
		t.Fatalf("%s names no files: the search for them is broken", what)
	}
	// The certificates are real ones, as `siteflip cert` would make them:
	// each location's with its name and its agent's address.
	var plain struct {
		Sites []struct {
			Name  string
			Agent struct{ Address string }
			TLS   struct {
				CertFile string `yaml:"cert_file"`
			}
		}
		Operator struct {
			CertFile string `yaml:"cert_file"`
		}
	}
	if err := doc.Decode(&plain); err != nil {
		t.Fatal(err)
	}
	var ids []pki.Identity
	for _, s := range plain.Sites {
		host, _, _ := net.SplitHostPort(s.Agent.Address)
		ids = append(ids, pki.Identity{Name: s.Name, IPs: []net.IP{net.ParseIP(host)}})
	}
	if f := plain.Operator.CertFile; f != "" {
		ids = append(ids, pki.Identity{Name: strings.TrimSuffix(filepath.Base(f), ".crt")})
	}
	var tlsPlain struct {
		TLS struct {
			CAFile string `yaml:"ca_file"`
		}
	}
	if err := doc.Decode(&tlsPlain); err != nil {
		t.Fatal(err)
	}
	pkiDir := filepath.Join(dir, filepath.Dir(tlsPlain.TLS.CAFile))
	if _, err := pki.GenerateLab(pkiDir, "example CA", ids); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.IsAbs(f) {
			continue // on the machine, not the example's to provide
		}
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			continue // a certificate or key made above
		}
		if strings.HasSuffix(f, ".crt") || strings.HasSuffix(f, ".key") {
			t.Errorf("%s names %s, which is not a location's or the operator's certificate or key, nor the CA's certificate beside them", what, f)
			continue
		}
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("placeholder\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "siteflip.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, probs, err := config.Check(path, driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	found := make([]bool, len(geography))
	for _, p := range probs {
		i := slices.IndexFunc(geography, func(w string) bool { return strings.HasPrefix(p.Field+": "+p.Msg, w) })
		if i < 0 || !p.Warning || p.Kind != config.KindGeography {
			t.Errorf("%s: %s", what, strings.Replace(p.String(), path, "example", 1))
			continue
		}
		found[i] = true
	}
	for i, ok := range found {
		if !ok {
			t.Errorf("%s: no geography warning %q", what, geography[i])
		}
	}
	if got := len(topo.Sites); got != 3 {
		t.Errorf("%s has %d locations, want the two sites and the witness written out", what, got)
	}
}
