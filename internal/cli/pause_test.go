package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/status"
)

// A paused group is the first thing status says, with who, how long ago,
// why and the command that ends it; its state says PAUSED too; a run in
// progress is said to go on.
func TestStatusShowsPause(t *testing.T) {
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	st := status.Status{Installation: "shop", AnsweredBy: "antwerp", Time: now, Groups: []status.GroupStatus{
		{Name: "webshop", ActiveSite: "brussels", State: status.StateProtected, Paused: true, PausedBy: "alice",
			PausedAt: now.Add(-2*time.Hour - 5*time.Minute), PauseReason: "kernel upgrade", Run: "r1"},
		{Name: "crm", ActiveSite: "antwerp", State: status.StateUnprotected},
	}}
	var b bytes.Buffer
	printStatus(&b, st, false)
	out := b.String()
	lines := strings.Split(out, "\n")
	want := "MAINTENANCE: webshop paused 2h ago by alice: kernel upgrade — no automatic failover — resume: siteflip resume webshop"
	if lines[0] != want {
		t.Errorf("first line of status:\n%s\nwant %q", out, want)
	}
	for _, s := range []string{
		"  run r1 goes on: a pause stops only what siteflip starts by itself (siteflip run r1)",
		"state PROTECTED (PAUSED)",
		"state UNPROTECTED   policy",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}
	if strings.Count(out, "MAINTENANCE") != 1 {
		t.Errorf("a group not paused is said to be:\n%s", out)
	}

	// Nothing paused: no maintenance line.
	st.Groups[0].Paused = false
	b.Reset()
	printStatus(&b, st, false)
	if strings.Contains(b.String(), "MAINTENANCE") || strings.Contains(b.String(), "PAUSED") {
		t.Errorf("nothing paused:\n%s", b.String())
	}
}

// What pause and resume print for each answer, idempotent cases included.
func TestPrintPauseResult(t *testing.T) {
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	p := &status.Pause{Group: "webshop", By: "alice", At: now.Add(-90 * time.Minute), Reason: "kernel upgrade"}
	for _, tt := range []struct {
		pause bool
		res   api.PauseResult
		want  string
	}{
		{true, api.PauseResult{Group: "webshop", Paused: true, Changed: true, Pause: p},
			"webshop: paused: kernel upgrade: no automatic failover and no scheduled drill until `siteflip resume webshop`; your own runs still work\n"},
		{true, api.PauseResult{Group: "webshop", Paused: true, Pause: p},
			"webshop: already paused by alice 1h ago: kernel upgrade: nothing changed\n"},
		{false, api.PauseResult{Group: "webshop", Changed: true, Pause: p},
			"webshop: resumed (paused by alice for 1h: kernel upgrade): automatic failover and scheduled drills are on again\n"},
		{false, api.PauseResult{Group: "webshop"}, "webshop: not paused: nothing changed\n"},
	} {
		var b bytes.Buffer
		printPauseResult(&b, tt.pause, tt.res, now)
		if b.String() != tt.want {
			t.Errorf("pause %v %+v:\n got  %q\n want %q", tt.pause, tt.res, b.String(), tt.want)
		}
	}
}

func TestCheckReason(t *testing.T) {
	for _, tt := range []struct {
		reason, ticket, want string
	}{
		{"kernel upgrade", "CHG-1", ""},
		{"two\nlines", "", "--reason holds a control character; write it on one line"},
		{"", "a\tb", "--ticket holds a control character; write it on one line"},
		{strings.Repeat("x", 501), "", "--reason is 501 bytes long; keep it under 500"},
	} {
		got := ""
		if err := checkReason(tt.reason, tt.ticket); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("checkReason(%.20q, %q) = %q, want %q", tt.reason, tt.ticket, got, tt.want)
		}
	}
}

func TestParseAt(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	now := time.Date(2026, 12, 5, 21, 30, 0, 0, loc)
	for _, tt := range []struct{ in, want string }{
		{"90m", "2026-12-05T23:00:00+01:00"},
		{"22:00", "2026-12-05T22:00:00+01:00"},
		{"21:00", "2026-12-06T21:00:00+01:00"}, // passed today: tomorrow
		{"2026-12-24 08:15", "2026-12-24T08:15:00+01:00"},
		{"2026-12-05T22:00:00Z", "2026-12-05T22:00:00Z"},
		{"soon", "error"},
		{"-1h", "error"},
	} {
		got := "error"
		if at, err := parseAt(tt.in, now); err == nil {
			got = at.Format(time.RFC3339)
		}
		if got != tt.want {
			t.Errorf("parseAt(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestScheduledLine(t *testing.T) {
	at := time.Date(2026, 12, 5, 22, 0, 0, 0, time.Local)
	g := status.GroupStatus{Name: "webshop", ScheduledSwitchover: &status.ScheduledSwitchover{Group: "webshop", To: "antwerp", At: at, By: "alice", Reason: "upgrade"}}
	want := "switchover to antwerp scheduled for " + at.Format("2006-01-02 15:04 MST") + " by alice (upgrade) — cancel: siteflip switchover webshop --cancel"
	if got := scheduledLine(g); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := scheduledLine(status.GroupStatus{Name: "crm"}); got != "" {
		t.Errorf("none scheduled: %q", got)
	}
}
