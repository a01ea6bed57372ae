package lab

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// TestTopologyRisk: the lab's topology plans for its three levels and
// requires the directory at each site of webshop. Its only lint findings
// are about geography, so that webshop can be ready: anything else would
// leave it at risk for good.
func TestTopologyRisk(t *testing.T) {
	binDir := pgBinDir()
	if binDir == "" {
		t.Skip("PostgreSQL server binaries are not installed (apt-get install postgresql-15): the topology names them")
	}
	topo, err := writeFiles(t.TempDir(), binDir, locations, groupOptions{postgres: true, stack: newStackState(locations, true), exe: "/opt/siteflip/bin/siteflip"})
	if err != nil {
		t.Fatal(err)
	}
	var levels []string
	for _, l := range topo.Levels {
		levels = append(levels, l.Name+":"+strings.Join(l.Destroys(topo.Sites), "+"))
	}
	if got, want := strings.Join(levels, " "), "minor: medium:brussels major:brussels+antwerp"; got != want {
		t.Errorf("levels and what they destroy: %q, want %q", got, want)
	}
	if l, _ := topo.Level("minor"); l == nil || len(l.Links) != 1 || l.Links[0] != [2]string{"brussels", "antwerp"} {
		t.Errorf("minor cuts %v, want the link brussels-antwerp", l)
	}
	g, _ := topo.Group(demoGroup)
	if len(g.Requires) != 1 || g.Requires[0].Name != ldapDependency || g.Requires[0].Sites["antwerp"].Address != "127.0.2.1:10389" {
		t.Fatalf("webshop requires %+v, want ldap at 127.0.2.1:10389 from antwerp", g.Requires)
	}
	for _, w := range notGeography(topo.Warnings) {
		t.Errorf("a lint finding that would leave webshop at risk for good: %s", w)
	}
	if len(topo.Warnings) == 0 {
		t.Errorf("no geography warning, want brussels and antwerp 41 km apart under min_site_distance")
	}
}

// notGeography is probs without the geography warnings, which every
// lab has: its locations are 41 km (and 89, 96 km) apart.
func notGeography(probs []config.Problem) []config.Problem {
	var out []config.Problem
	for _, p := range probs {
		if !p.Warning || p.Kind != config.KindGeography {
			out = append(out, p)
		}
	}
	return out
}

// whatIfDoc is the part of `siteflip whatif -o json` the lab checks.
type whatIfDoc struct {
	Kind         string `json:"kind"`
	ControlPlane struct {
		Quorum bool `json:"quorum"`
	} `json:"control_plane"`
	Groups []whatIfGroupDoc `json:"groups"`
}

type whatIfGroupDoc struct {
	Name               string      `json:"name"`
	Outcome            string      `json:"outcome"`
	Survives           bool        `json:"survives"`
	Automatic          bool        `json:"automatic"`
	To                 string      `json:"to"`
	Command            string      `json:"command"`
	Fix                string      `json:"fix"`
	ExpectedRTOSeconds *float64    `json:"expected_rto_seconds"`
	RTOSamples         int         `json:"rto_samples"`
	Unreachable        []whatIfDep `json:"dependencies_unreachable"`
}

type whatIfDep struct {
	Name string `json:"name"`
	Site string `json:"site"`
}

// TestRisk is issue 17's check in the lab: readiness with the directory
// at brussels only, what-if answers before and after a measured drill and
// while a site is down, and check's geography warning.
func TestRisk(t *testing.T) {
	skipUnlessLab(t)
	o, _, c := labUp(t)
	waitStatus(t, c, 60*time.Second, "protected at brussels", func(st status.Status) bool { return groupProtectedAt(st, demoGroup, "brussels") })

	// The directory runs at brussels only: antwerp cannot reach its own,
	// and webshop is at risk, naming it.
	began := time.Now()
	st := waitStatus(t, c, 10*time.Second, "webshop at risk: ldap unreachable from antwerp", func(st status.Status) bool {
		return hasReason(groupOf(st, demoGroup), status.AtRisk, "dependency", "antwerp", ldapDependency, "unreachable")
	})
	g := groupOf(st, demoGroup)
	t.Logf("webshop %s %s after the lab was healthy: %+v", g.Readiness.Verdict, time.Since(began).Round(time.Millisecond), g.Readiness.Reasons)
	if g.Readiness.Verdict != status.AtRisk {
		t.Errorf("verdict %s, want at_risk", g.Readiness.Verdict)
	}
	out, code := siteflipCLI(t, o, "", "readiness", demoGroup)
	if code != 1 || !strings.Contains(out, ldapDependency) || !strings.Contains(out, "antwerp") {
		t.Errorf("readiness webshop: exit %d, want 1 naming ldap and antwerp:\n%s", code, out)
	}

	// Geography: check warns of the 41 km between the sites, and still
	// passes.
	out, code = siteflipCLI(t, o, "", "check")
	if code != 0 || !strings.Contains(out, "warning") || !strings.Contains(out, "brussels") || !strings.Contains(out, "antwerp") || !strings.Contains(out, "min_site_distance") {
		t.Errorf("check: exit %d, want 0 with a warning on brussels and antwerp under min_site_distance:\n%s", code, out)
	}

	// Before any failover or drill, the RTO is unknown; a drill measures
	// one, which whatif then expects.
	w := whatIf(t, o, "--lose", "brussels")
	if wg := whatIfGroup(t, w, demoGroup); wg.ExpectedRTOSeconds != nil || wg.RTOSamples != 0 {
		t.Errorf("expected RTO %v from %d samples before anything was measured, want unknown", *wg.ExpectedRTOSeconds, wg.RTOSamples)
	}
	r := runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Drill})
	if r.State != plan.RunSucceeded {
		t.Fatalf("drill %s: %s", r.State, r.Error)
	}
	st = waitStatus(t, c, 30*time.Second, "the drill recorded with its RTO", func(st status.Status) bool {
		d := groupOf(st, demoGroup).Drills
		return d != nil && d.Last != nil && d.Last.Run == r.ID && d.Last.RTOSeconds != nil
	})
	measured := *groupOf(st, demoGroup).Drills.Last.RTOSeconds

	w = whatIf(t, o, "--lose", "brussels")
	wg := whatIfGroup(t, w, demoGroup)
	if !w.ControlPlane.Quorum || !wg.Survives || wg.Outcome != "automatic_failover" || !wg.Automatic || wg.To != "antwerp" {
		t.Errorf("lose brussels: quorum %v, webshop %+v; want the quorum kept and an automatic failover to antwerp", w.ControlPlane.Quorum, wg)
	}
	if wg.ExpectedRTOSeconds == nil || wg.RTOSamples != 1 || *wg.ExpectedRTOSeconds < measured*0.9 || *wg.ExpectedRTOSeconds > measured*1.1+0.01 {
		t.Errorf("lose brussels: expected RTO %v from %d samples, want the drill's %.3f s from 1", wg.ExpectedRTOSeconds, wg.RTOSamples, measured)
	}
	if !slices.ContainsFunc(wg.Unreachable, func(d whatIfDep) bool { return d.Name == ldapDependency }) {
		t.Errorf("lose brussels: unreachable dependencies %+v, want ldap (it runs at brussels only)", wg.Unreachable)
	}

	w = whatIf(t, o, "--at", "50.85,4.35", "--radius", "60km")
	wg = whatIfGroup(t, w, demoGroup)
	if w.ControlPlane.Quorum || wg.Survives || wg.Outcome != "lost" || !strings.Contains(wg.Fix, "further") {
		t.Errorf("60 km around Brussels: quorum %v, webshop %+v; want the quorum lost and webshop lost, moving a site further away", w.ControlPlane.Quorum, wg)
	}
	w = whatIf(t, o, "--level", "major")
	if wg = whatIfGroup(t, w, demoGroup); wg.Survives {
		t.Errorf("level major: webshop %+v, want lost", wg)
	}
	w = whatIf(t, o, "--lose", "frankfurt")
	wg = whatIfGroup(t, w, demoGroup)
	if !w.ControlPlane.Quorum || !wg.Survives || wg.Outcome != "unaffected" || wg.To != "brussels" || wg.Automatic {
		t.Errorf("lose frankfurt: quorum %v, webshop %+v; want the quorum kept and webshop staying at brussels", w.ControlPlane.Quorum, wg)
	}
	w = whatIf(t, o, "--level", "minor")
	wg = whatIfGroup(t, w, demoGroup)
	if !w.ControlPlane.Quorum || !wg.Survives || wg.Outcome != "degraded" {
		t.Errorf("level minor (the link cut): quorum %v, webshop %+v; want the quorum kept and webshop degraded in place", w.ControlPlane.Quorum, wg)
	}

	// A directory at antwerp too: webshop is ready within a few seconds.
	if err := LDAP(t.Context(), o, "start", "antwerp"); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	st = waitStatus(t, c, 10*time.Second, "webshop ready", func(st status.Status) bool {
		g := groupOf(st, demoGroup)
		return g.Readiness != nil && g.Readiness.Verdict == status.Ready
	})
	t.Logf("webshop ready %s after the directory started at antwerp; notes: %+v", time.Since(began).Round(time.Millisecond), groupOf(st, demoGroup).Readiness.Reasons)
	if out, code := siteflipCLI(t, o, "", "readiness", demoGroup); code != 0 {
		t.Errorf("readiness webshop: exit %d, want 0:\n%s", code, out)
	}

	// With brussels down and webshop failed over to antwerp, whatif still
	// answers: losing frankfurt as well leaves antwerp alone, without a
	// quorum, and a person must force it.
	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, 60*time.Second, "webshop failed over to antwerp", func(st status.Status) bool {
		g := groupOf(st, demoGroup)
		return g.ActiveSite == "antwerp" && g.Run == "" && g.State != status.StateFailingOver
	})
	w = whatIf(t, o, "--lose", "frankfurt")
	wg = whatIfGroup(t, w, demoGroup)
	if w.ControlPlane.Quorum || !wg.Survives || wg.Outcome != "needs_force" || !strings.Contains(wg.Command, "--force") {
		t.Errorf("brussels down, lose frankfurt: quorum %v, webshop %+v; want the quorum lost and a forced failover at antwerp", w.ControlPlane.Quorum, wg)
	}
}

// hasReason says whether g's readiness has a reason of severity and kind
// whose message names every word.
func hasReason(g status.GroupStatus, severity, kind string, words ...string) bool {
	if g.Readiness == nil {
		return false
	}
	for _, r := range g.Readiness.Reasons {
		if r.Severity != severity || r.Kind != kind {
			continue
		}
		all := true
		for _, w := range words {
			all = all && strings.Contains(r.Message+" "+r.Site, w)
		}
		if all {
			return true
		}
	}
	return false
}

// whatIf runs `siteflip whatif ARGS -o json` and decodes its document.
func whatIf(t *testing.T, o Options, args ...string) whatIfDoc {
	t.Helper()
	out, code := siteflipCLI(t, o, "", append(append([]string{"whatif"}, args...), "-o", "json")...)
	var w whatIfDoc
	if code != 0 {
		t.Fatalf("whatif %s: exit %d:\n%s", strings.Join(args, " "), code, out)
	}
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.Kind != "whatif" {
		t.Fatalf("whatif %s: %v (kind %q):\n%s", strings.Join(args, " "), err, w.Kind, out)
	}
	return w
}

func whatIfGroup(t *testing.T, w whatIfDoc, name string) whatIfGroupDoc {
	t.Helper()
	for _, g := range w.Groups {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("whatif: no group %s in %+v", name, w)
	panic("unreachable")
}
