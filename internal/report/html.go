package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"time"
)

// HTML writes the report as one self-contained page: its style and its
// timeline chart (SVG) are inline, and it links to nothing, so that it can
// be mailed, attached to a ticket or opened offline.
func HTML(w io.Writer, r Report) error {
	return page.Execute(w, struct {
		R     Report
		Chart chart
	}{r, newChart(r)})
}

// The chart's geometry, in SVG user units.
const (
	chartWidth  = 960.0
	labelWidth  = 250.0 // step IDs, left of the bars
	plotLeft    = labelWidth + 10
	plotRight   = chartWidth - 30
	chartTop    = 64.0 // room for the marks' labels
	rowHeight   = 22.0
	barHeight   = 14.0
	axisHeight  = 34.0
	minBarWidth = 2.0
)

// chart is the timeline: one bar per step on a time axis from the
// incident's start to the run's end.
type chart struct {
	Width, Height float64
	PlotLeft      float64
	PlotRight     float64
	Top, AxisY    float64
	Bars          []bar
	Ticks         []tick
	Marks         []mark
}

type bar struct {
	ID, Class, Title string
	X, Y, W          float64
	TextY            float64
	Rollback         bool
	Ran              bool // false: never started, no bar
}

type tick struct {
	X     float64
	Label string
}

type mark struct {
	X, LabelY float64
	Label     string
	Anchor    string // text-anchor: a label near the right edge ends at its mark
}

func newChart(r Report) chart {
	start, end := r.IncidentStart.Time, r.End.Time
	span := end.Sub(start)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / float64(span)
		return plotLeft + math.Max(0, math.Min(1, f))*(plotRight-plotLeft)
	}
	c := chart{Width: chartWidth, PlotLeft: plotLeft, PlotRight: plotRight, Top: chartTop}
	for i, s := range r.Steps {
		y := chartTop + float64(i)*rowHeight
		b := bar{ID: s.ID, Class: s.State, Y: y + (rowHeight-barHeight)/2, TextY: y + rowHeight/2 + 4}
		if s.Rollback {
			b.Class += " rollback"
			b.Rollback = true
		}
		b.Title = fmt.Sprintf("%s: %s", s.ID, s.State)
		if !s.Started.IsZero() {
			b.Ran = true
			to := s.Ended.Time
			if to.IsZero() {
				to = end
			}
			b.X = x(s.Started.Time)
			b.W = math.Max(minBarWidth, x(to)-b.X)
			b.Title += fmt.Sprintf(", %s after the start, took %s", s.Started.Sub(start).Round(time.Millisecond), s.Took)
		}
		if d := s.Detail(); d != "" {
			b.Title += "\n" + d
		}
		c.Bars = append(c.Bars, b)
	}
	c.AxisY = chartTop + float64(len(r.Steps))*rowHeight + 6
	c.Height = c.AxisY + axisHeight
	every := tickEvery(span)
	for t := time.Duration(0); t <= span; t += every {
		c.Ticks = append(c.Ticks, tick{X: x(start.Add(t)), Label: "+" + t.String()})
	}
	add := func(at time.Time, label string) {
		if !at.IsZero() {
			// Three rows of labels, so that marks close in time stay legible.
			m := mark{X: x(at), LabelY: 16 + float64(len(c.Marks)%3)*15, Label: label, Anchor: "middle"}
			if m.X > plotRight-80 {
				m.Anchor = "end"
			}
			c.Marks = append(c.Marks, m)
		}
	}
	if in := r.Incident; in != nil {
		add(in.LastHeard.Time, in.Site+" last heard")
		add(in.DeclaredLost.Time, in.Site+" declared lost")
	}
	add(r.Started.Time, "run started")
	add(r.WritableAt.Time, "writable at "+r.To)
	add(r.Recovered.Time, "recovered")
	return c
}

// tickEvery is a round interval that puts at most ten ticks on span.
func tickEvery(span time.Duration) time.Duration {
	for _, d := range []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	} {
		if span/d <= 10 {
			return d
		}
	}
	return span / 10
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"n":   func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"add": func(a, b float64) float64 { return a + b },
	"sub": func(a, b float64) float64 { return a - b },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>siteflip report: {{.R.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2228; margin: 2em auto; max-width: 1000px; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #dde1e6; padding-bottom: .2em; }
code, td.id, td.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceff2; vertical-align: top; }
th { background: #f5f7f9; font-weight: 600; }
td.detail { word-break: break-word; }
tr.rollback td { background: #fbf6ee; }
.meta { color: #4a525c; }
.error { color: #a61b1b; }
.v-pass { color: #1c7a43; font-weight: 600; }
.v-fail { color: #b01c1c; font-weight: 700; }
.v-unknown { color: #6b7280; }
svg { width: 100%; height: auto; font: 11px ui-monospace, Menlo, Consolas, monospace; }
svg .label { fill: #1d2228; }
svg .axis { stroke: #9aa0a6; }
svg .grid { stroke: #eceff2; }
svg .tick { fill: #6b7280; }
svg .mark { stroke: #7c3aed; stroke-dasharray: 4 3; }
svg .marklabel { fill: #7c3aed; }
svg rect.done { fill: #2e9e5b; }
svg rect.failed { fill: #d64545; }
svg rect.running { fill: #3b7dd8; }
svg rect.skipped { fill: #b0b6bd; }
svg rect.pending { fill: #e2e5e9; }
svg rect.rollback { stroke: #8a5a00; stroke-width: 1.5; }
svg .rb { fill: #8a5a00; font-style: italic; }
svg .notrun { fill: #9aa0a6; font-style: italic; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px; vertical-align: middle; }
</style>
</head>
<body>
<h1>{{.R.Title}}</h1>
<p class="meta">Run <code>{{.R.RunID}}</code>, started {{.R.Started}} by {{.R.StartedBy}}{{with .R.Reason}}, because: {{.}}{{end}}{{with .R.Ticket}} (ticket {{.}}){{end}}.
State: <strong>{{.R.State}}</strong>{{if not .R.Ended.IsZero}}, ended {{.R.Ended}}{{end}}.</p>
{{with .R.Error}}<p class="error">Error: {{.}}</p>{{end}}
{{with .R.Incident}}<p>Incident: {{.Site}} last heard from {{.LastHeard}}, declared lost {{.DeclaredLost}}.</p>{{end}}
{{with .R.Target}}<p>Target: {{.}}.</p>{{end}}

<h2>Summary</h2>
<table>
<tr><th></th><th>measured</th><th>target</th><th>verdict</th></tr>
<tr><td>RTO</td><td>{{if .R.RTO.Known}}{{.R.RTO}} ({{.R.RTONote}}){{else}}{{.R.RTONote}}{{end}}</td><td>{{.R.RTOTarget}}</td><td class="v-{{.R.RTOVerdict}}">{{.R.RTOVerdict}}</td></tr>
<tr><td>RPO</td><td>{{if .R.RPO.Known}}{{.R.RPO}} ({{.R.RPONote}}){{else}}{{.R.RPONote}}{{end}}</td><td>{{.R.MaxDataLoss}}</td><td class="v-{{.R.RPOVerdict}}">{{.R.RPOVerdict}}</td></tr>
<tr><td>Verification</td><td>{{.R.VerificationText}}</td><td>all checks pass</td><td class="v-{{.R.VerificationVerdict}}">{{.R.VerificationVerdict}}</td></tr>
</table>

<h2>Timeline</h2>
<p class="legend"><span><i style="background:#2e9e5b"></i>done</span><span><i style="background:#d64545"></i>failed</span><span><i style="background:#3b7dd8"></i>running</span><span><i style="background:#b0b6bd"></i>skipped</span><span><i style="background:#fbf6ee;outline:1.5px solid #8a5a00"></i>rollback</span></p>
<svg viewBox="0 0 {{n .Chart.Width}} {{n .Chart.Height}}" role="img" aria-label="timeline of the run's steps">
{{- range .Chart.Ticks}}
<line class="grid" x1="{{n .X}}" y1="{{n $.Chart.Top}}" x2="{{n .X}}" y2="{{n $.Chart.AxisY}}"/>
<text class="tick" x="{{n .X}}" y="{{n $.Chart.AxisY}}" dy="16" text-anchor="middle">{{.Label}}</text>
{{- end}}
<line class="axis" x1="{{n .Chart.PlotLeft}}" y1="{{n .Chart.AxisY}}" x2="{{n .Chart.PlotRight}}" y2="{{n .Chart.AxisY}}"/>
{{- range .Chart.Bars}}
<g>
<title>{{.Title}}</title>
<text class="label" x="{{n (sub $.Chart.PlotLeft 10)}}" y="{{n .TextY}}" text-anchor="end">{{if .Rollback}}<tspan class="rb">rollback </tspan>{{end}}{{.ID}}</text>
{{- if .Ran}}
<rect class="{{.Class}}" x="{{n .X}}" y="{{n .Y}}" width="{{n .W}}" height="14" rx="2"/>
{{- else}}
<text class="notrun" x="{{n $.Chart.PlotLeft}}" y="{{n .TextY}}">not run</text>
{{- end}}
</g>
{{- end}}
{{- range .Chart.Marks}}
<line class="mark" x1="{{n .X}}" y1="{{n (add .LabelY 4)}}" x2="{{n .X}}" y2="{{n $.Chart.AxisY}}"/>
<text class="marklabel" x="{{n .X}}" y="{{n .LabelY}}" text-anchor="{{.Anchor}}">{{.Label}}</text>
{{- end}}
</svg>

<h2>Steps</h2>
<table>
<tr><th>step</th><th>kind</th><th>resource</th><th>site</th><th>state</th><th>attempts</th><th>start</th><th>end</th><th>took</th><th>output / error</th></tr>
{{- range .R.Steps}}
<tr{{if .Rollback}} class="rollback"{{end}}><td class="id">{{.ID}}</td><td>{{.Kind}}{{if .Rollback}} (rollback){{end}}</td><td>{{.Resource}}</td><td>{{.Site}}</td><td>{{.State}}</td><td>{{.Attempts}}</td><td class="mono">{{.Started}}</td><td class="mono">{{.Ended}}</td><td>{{.Took}}</td><td class="detail">{{.Detail}}</td></tr>
{{- end}}
</table>

<h2>Checks</h2>
{{- if .R.Checks}}
<table>
<tr><th>check</th><th>site</th><th>result</th><th>attempts</th><th>seen / error</th></tr>
{{- range .R.Checks}}
<tr><td class="id">{{.ID}}</td><td>{{.Site}}</td><td>{{.Result}}</td><td>{{.Attempts}}</td><td class="detail">{{.Detail}}</td></tr>
{{- end}}
</table>
{{- else}}
<p>The group has no checks.</p>
{{- end}}
</body>
</html>
`
