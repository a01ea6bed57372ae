package jsonview

import "time"

// Kinds of the dashboard's documents.
const (
	KindUIConfig   = "ui_config"
	KindLagHistory = "lag_history"
)

// UIConfig is GET /v1/ui/config: who the caller is, and where the
// installation's agents are, for the page to read another when its own is
// lost.
type UIConfig struct {
	Header
	Installation string       `json:"installation"`
	AnsweredBy   string       `json:"answered_by"`
	Principal    UIPrincipal  `json:"principal"`
	Locations    []UILocation `json:"locations"`
}

// UIPrincipal is the caller.
type UIPrincipal struct {
	Name string `json:"name"`
	// Role is viewer, operator, admin, location or anonymous (TLS off).
	Role string `json:"role"`
	// Via is how the caller proved who it is: certificate, token, or none
	// (TLS off).
	Via string `json:"via"`
}

// UILocation is one location and its agent's address.
type UILocation struct {
	Name string `json:"name"`
	Role string `json:"role"`
	URL  string `json:"url"`
}

// UIConfigOf is the document of the page's settings.
func UIConfigOf(installation, answeredBy string, p UIPrincipal, locs []UILocation) UIConfig {
	if locs == nil {
		locs = []UILocation{}
	}
	return UIConfig{Header: header(KindUIConfig), Installation: installation, AnsweredBy: answeredBy, Principal: p, Locations: locs}
}

// LagHistory is GET /v1/lag: the standbys' lag over the last hour, as one
// agent sampled it.
type LagHistory struct {
	Header
	AnsweredBy      string  `json:"answered_by"`
	IntervalSeconds float64 `json:"interval_seconds"`
	WindowSeconds   float64 `json:"window_seconds"`
	// Truncated: the agent held more standbys than it keeps series for,
	// and dropped the least recently sampled within the window.
	Truncated bool        `json:"truncated"`
	Series    []LagSeries `json:"series"`
}

// LagSeries is one standby of one resource.
type LagSeries struct {
	Group              string     `json:"group"`
	Resource           string     `json:"resource"`
	Site               string     `json:"site"`
	MaxDataLossSeconds *float64   `json:"max_data_loss_seconds"`
	Points             []LagPoint `json:"points"`
}

// LagPoint is one sample; without lag_seconds the lag was not known.
type LagPoint struct {
	At         time.Time `json:"at"`
	LagSeconds *float64  `json:"lag_seconds,omitempty"`
	LagBytes   *int64    `json:"lag_bytes,omitempty"`
	Streaming  bool      `json:"streaming"`
}

// LagHistoryOf is the document of series sampled every interval and kept
// for window.
func LagHistoryOf(answeredBy string, interval, window time.Duration, truncated bool, series []LagSeries) LagHistory {
	if series == nil {
		series = []LagSeries{}
	}
	for i := range series {
		if series[i].Points == nil {
			series[i].Points = []LagPoint{}
		}
		for j := range series[i].Points {
			series[i].Points[j].At = utc(series[i].Points[j].At)
		}
	}
	return LagHistory{Header: header(KindLagHistory), AnsweredBy: answeredBy,
		IntervalSeconds: seconds(interval), WindowSeconds: seconds(window), Truncated: truncated, Series: series}
}
