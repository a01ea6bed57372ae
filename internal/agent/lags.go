package agent

import (
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
				if known && sameLag(next, prev) {
					continue
				}
				out = append(out, lagUpdate{g.Name, r.Name, site, next})
			}
		}
	}
	return out
}

func sameLag(a, b status.Lag) bool {
	return a.Seconds == b.Seconds && a.Bytes == b.Bytes && a.Epoch == b.Epoch && a.Streaming == b.Streaming &&
		a.MeasuredAt.Equal(b.MeasuredAt) && a.SeenAt.Equal(b.SeenAt)
}
