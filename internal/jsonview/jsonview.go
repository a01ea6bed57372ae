// Package jsonview owns the JSON documents that `siteflip … -o json`
// prints for scripts: status, runs, run, audit and whatif, and those the agent
// serves its dashboard: ui_config and lag_history; each versioned by its
// api_version and documented in docs/json.md. They are views, converted
// from the types the agents store and exchange: those keep their own JSON,
// which a cluster in the middle of an upgrade still reads, while these
// follow one convention — snake_case keys, durations as seconds in JSON
// numbers under keys ending in _seconds, times as RFC 3339 strings under
// keys ending in _at. Within one api_version, fields are added, never
// renamed or removed, and their meaning does not change.
package jsonview

import (
	"encoding/json"
	"io"
	"time"
)

// APIVersion is the version of every document of this package.
const APIVersion = "siteflip.v1"

// Kinds of documents.
const (
	KindStatus = "status"
	KindRuns   = "runs"
	KindRun    = "run"
	KindAudit  = "audit"
)

// Header opens every document: which version of which document it is.
type Header struct {
	APIVersion string `json:"api_version"`
	Kind       string `json:"kind"`
}

func header(kind string) Header { return Header{APIVersion: APIVersion, Kind: kind} }

// Write writes doc as indented JSON, one document ending in a newline.
func Write(w io.Writer, doc any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// WriteLine writes doc as JSON on one line: a stream of documents (status
// --watch) is one per line.
func WriteLine(w io.Writer, doc any) error {
	return json.NewEncoder(w).Encode(doc)
}

// seconds is d in seconds, the nearest number to it (1.64, where
// Duration.Seconds gives 1.6400000000000001).
func seconds(d time.Duration) float64 { return float64(d) / float64(time.Second) }

// secondsOf is d in seconds, nil for 0 (not known, or not set).
func secondsOf(d time.Duration) *float64 {
	if d == 0 {
		return nil
	}
	s := seconds(d)
	return &s
}

// parseSeconds reads a duration that a stored type keeps as Go writes
// durations ("5s", "1m30s") into seconds; nil when empty or unreadable.
func parseSeconds(s string) *float64 {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil
	}
	v := seconds(d)
	return &v
}

// utc is t in UTC, so that every time is written with a Z.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
