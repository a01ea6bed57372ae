package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Markdown writes the report for people: a title, the summary (RTO, RPO,
// verification), the steps and the checks.
func Markdown(w io.Writer, r Report) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }

	p("# %s\n\n", mdText(r.Title()))
	p("Run `%s`, started %s by %s", r.RunID, r.Started, mdText(r.StartedBy()))
	if r.Reason != "" {
		p(", because: %s", mdText(r.Reason))
	}
	if r.Ticket != "" {
		p(" (ticket %s)", mdText(r.Ticket))
	}
	p(". State: **%s**", r.State)
	if !r.Ended.IsZero() {
		p(", ended %s", r.Ended)
	}
	p(".\n\n")
	if r.Error != "" {
		p("Error: %s\n\n", mdText(r.Error))
	}
	if in := r.Incident; in != nil {
		p("Incident: %s last heard from %s, declared lost %s.\n\n", mdText(in.Site), in.LastHeard, in.DeclaredLost)
	}
	if r.Target != "" {
		p("Target: %s.\n\n", mdText(r.Target))
	}

	p("## Summary\n\n")
	p("| | measured | target | verdict |\n| --- | --- | --- | --- |\n")
	p("| RTO | %s | %s | %s |\n", mdCell(measured(r.RTO, r.RTONote)), r.RTOTarget, mdVerdict(r.RTOVerdict))
	p("| RPO | %s | %s | %s |\n", mdCell(measured(r.RPO, r.RPONote)), r.MaxDataLoss, mdVerdict(r.RPOVerdict))
	p("| Verification | %s | all checks pass | %s |\n\n", mdCell(r.VerificationText()), mdVerdict(r.VerificationVerdict()))

	p("## Steps\n\n")
	p("| step | kind | resource | site | state | attempts | start | end | took | output / error |\n")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	rollback := false
	for _, s := range r.Steps {
		if s.Rollback && !rollback {
			rollback = true
			p("| **rollback** | | | | | | | | | |\n")
		}
		id := "`" + s.ID + "`"
		if s.Wave != 0 {
			id += fmt.Sprintf(" ∥%d", s.Wave) // side by side with the others of its wave
		}
		p("| %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n",
			id, s.Kind, mdCell(s.Resource), mdCell(s.Site), s.State, s.Attempts, s.Started, s.Ended, s.Took, mdCell(s.Detail()))
	}

	p("\n## Checks\n\n")
	if len(r.Checks) == 0 {
		p("The group has no checks.\n")
	} else {
		p("| check | site | result | attempts | seen / error |\n| --- | --- | --- | --- | --- |\n")
		for _, c := range r.Checks {
			p("| `%s` | %s | %s | %d | %s |\n", c.ID, mdCell(c.Site), c.Result, c.Attempts, mdCell(c.Detail()))
		}
	}
	return b.Flush()
}

// measured is a measure with what it means.
func measured(d Duration, note string) string {
	if !d.Known {
		return note
	}
	return d.String() + " (" + note + ")"
}

func mdVerdict(v Verdict) string {
	switch v {
	case Pass:
		return "pass"
	case Fail:
		return "**FAIL**"
	}
	return "unknown"
}

// mdCell makes s safe in a table cell: one line, no column breaks, no
// markup of its own.
func mdCell(s string) string {
	s = strings.ReplaceAll(mdText(s), "|", `\|`)
	if s == "" {
		return "-"
	}
	return s
}

// mdText makes s one line of plain text in markdown.
var mdEscaper = strings.NewReplacer(
	"\r\n", " ", "\n", " ", "\r", " ",
	`\`, `\\`, "`", "\\`", "*", `\*`, "<", "&lt;", ">", "&gt;", "[", `\[`, "]", `\]`,
)

func mdText(s string) string { return mdEscaper.Replace(s) }
