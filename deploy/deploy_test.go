// Package deploy holds what installs siteflip on a machine: the Debian
// package's files (debian/, etc/, built by scripts/deb.sh) and the systemd
// unit (systemd/). Its tests check those files; docs/deploy.md tells how
// they are used.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitFile is the packaged unit.
const unitFile = "systemd/siteflip-agent.service"

// TestUnitVerifies runs systemd-analyze verify on the unit, with its
// ExecStart pointed at a stand-in for /usr/bin/siteflip (verify wants the
// program to exist).
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPED LOUDLY: systemd-analyze is not installed (apt-get install systemd), so the unit is not verified")
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "siteflip")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/siteflip ") {
		t.Fatal("the unit's ExecStart no longer runs /usr/bin/siteflip: update this test")
	}
	text := strings.ReplaceAll(string(unit), "ExecStart=/usr/bin/siteflip ", "ExecStart="+bin+" ")
	path := filepath.Join(dir, filepath.Base(unitFile))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	// verify exits 0 on some warnings about the unit itself: none allowed.
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, filepath.Base(unitFile)) {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
}

// TestUnitKeepsDatabasesOnRestart pins the decisions of the unit that an
// edit could undo without any tool noticing (docs/deploy.md, "The service
// unit"): the databases the agent started outlive its restart, it runs as
// its own user, and it may bind 53 and 179 and nothing more.
func TestUnitKeepsDatabasesOnRestart(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{}
	for _, l := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			set[k] = v
		}
	}
	for k, want := range map[string]string{
		"KillMode":              "process",
		"User":                  "siteflip",
		"Restart":               "always",
		"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"LimitNICE":             "-10",
	} {
		if got := set[k]; got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if !strings.Contains(set["ExecStart"], "--site ${SITEFLIP_SITE}") {
		t.Errorf("ExecStart=%s does not take the location from SITEFLIP_SITE", set["ExecStart"])
	}
}

// TestDebianVersion: what scripts/deb.sh makes of git describe.
func TestDebianVersion(t *testing.T) {
	for _, tt := range []struct{ describe, kind, want string }{
		{"v1.2.3", "tagged", "1.2.3"},
		{"v1.2.3-4-gabcdef0", "tagged", "1.2.3+4.gabcdef0"},
		{"v1.2.3-4-gabcdef0-dirty", "tagged", "1.2.3+4.gabcdef0.dirty"},
		{"0454eff", "untagged", "0.0~git.0454eff"},
		{"0454eff-dirty", "untagged", "0.0~git.0454eff.dirty"},
	} {
		out, err := exec.Command("../scripts/deb.sh", "--version-of", tt.describe, tt.kind).Output()
		if err != nil {
			t.Fatalf("deb.sh --version-of %s: %v", tt.describe, err)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("%s (%s): got %q, want %q", tt.describe, tt.kind, got, tt.want)
		}
	}
}
