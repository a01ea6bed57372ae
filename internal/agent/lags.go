package agent

import (
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// lagUpdate is a lag record to store.
type lagUpdate struct {
	group, resource, site string
	lag                   status.Lag
}

// lagUpdates returns the lag records that change with snap
// (docs/design/safety.md, "Lag a failover can trust"). Each comes from the
// view the active site publishes:
//
//   - its primary serves and reports the standby streaming with a lag: a
//     new measurement, timed on the primary's clock;
//   - it serves and reports the standby not streaming (or not at all):
//     from then on what the standby lacks is unknown;
//   - it does not answer its agent's observation (role unknown: it may be
//     writing) or its lag cannot be measured: the last measurement stands,
//     and its staleness grows with every publication of the view;
//   - it is down (no server runs): nothing is written, the record stands.
//
// A site that publishes no view changes nothing.
func lagUpdates(t *config.Topology, snap status.Snapshot) []lagUpdate {
	var out []lagUpdate
	for i := range t.Groups {
		g := &t.Groups[i]
		rec, adopted := snap.Records[g.Name]
		if !adopted {
			continue
		}
		view, published := snap.Views[rec.ActiveSite]
		if !published {
			continue
		}
		for _, r := range g.Resources {
			if !r.Data {
				continue
			}
			rv, observed := view.Resources[g.Name+"/"+r.Name]
			serves := observed && rv.Up && rv.Role == status.RolePrimary
			if observed && !rv.Up && rv.Role == status.RoleDown {
				continue // no server runs: nothing is written
			}
			for _, site := range g.Sites {
				if site == rec.ActiveSite {
					continue
				}
				prev, known := snap.Lags[g.Name][r.Name][site]
				current := known && prev.Epoch == rec.Epoch
				var sb *status.StandbyView
				for j := range rv.Standbys {
					if rv.Standbys[j].Site == site {
						sb = &rv.Standbys[j]
					}
				}
				var next status.Lag
				switch {
				case serves && sb != nil && sb.State == "streaming" && sb.LagSeconds >= 0 && sb.LagBytes >= 0:
					next = status.Lag{Seconds: sb.LagSeconds, Bytes: sb.LagBytes, Epoch: rec.Epoch,
						MeasuredAt: rv.ObservedAt, SeenAt: view.PublishedAt, Streaming: true}
				case serves && (sb == nil || sb.State != "streaming"):
					next = status.Lag{Seconds: prev.Seconds, Bytes: prev.Bytes, Epoch: rec.Epoch,
						MeasuredAt: rv.ObservedAt, SeenAt: view.PublishedAt, Streaming: false}
				case current:
					next = prev
					next.SeenAt = view.PublishedAt
				default:
					continue
				}
				if known && !materially(next, prev) {
					continue
				}
				out = append(out, lagUpdate{g.Name, r.Name, site, next})
			}
		}
	}
	return out
}

// lagBytesSlack is how far the lag in bytes may move before the record
// is written again: bytes are shown, the bound is judged on seconds.
const lagBytesSlack = 16 << 20

// materially says whether next differs enough from the stored prev to
// be written: another epoch or streaming state; a lag or a staleness
// moved by more than status.LagSlack (JudgeLag adds that much to the
// bound); bytes by more than lagBytesSlack; or the record is
// status.LagRefresh old. A record per standby per publication of the
// primary's view was one etcd write per second per group.
func materially(next, prev status.Lag) bool {
	moved := func(a, b time.Duration) bool { return a-b > status.LagSlack || b-a > status.LagSlack }
	seconds := func(l status.Lag) time.Duration { return time.Duration(l.Seconds * float64(time.Second)) }
	switch {
	case next.Epoch != prev.Epoch || next.Streaming != prev.Streaming:
		return true
	case moved(seconds(next), seconds(prev)) || moved(next.Staleness(), prev.Staleness()):
		return true
	case next.Bytes-prev.Bytes > lagBytesSlack || prev.Bytes-next.Bytes > lagBytesSlack:
		return true
	}
	return next.SeenAt.Sub(prev.SeenAt) >= status.LagRefresh
}
