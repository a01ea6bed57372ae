package status

import (
	"errors"
	"testing"
	"time"
)

// TestJudgeLag: the bound is the lag, its staleness, the serve lease and
// LagSlack, what the stored record may lag behind the last measurement.
func TestJudgeLag(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	lag := &Lag{Seconds: 0.5, Epoch: 3, MeasuredAt: at, SeenAt: at.Add(time.Second), Streaming: true}
	bound, err := JudgeLag(lag, 3, 5*time.Second, 400*time.Millisecond)
	if want := 500*time.Millisecond + time.Second + 400*time.Millisecond + LagSlack; err != nil || bound != want {
		t.Errorf("JudgeLag = %s, %v; want %s", bound, err, want)
	}
	// Within max_data_loss but for the slack: refused.
	if _, err := JudgeLag(lag, 3, 1900*time.Millisecond, 400*time.Millisecond); !errors.Is(err, ErrLagTooFar) {
		t.Errorf("a bound of 2s against max_data_loss 1.9s: %v, want ErrLagTooFar", err)
	}
	for _, tc := range []struct {
		name string
		l    *Lag
	}{
		{"never measured", nil},
		{"another epoch", &Lag{Epoch: 2, Streaming: true}},
		{"not streaming", &Lag{Epoch: 3}},
	} {
		if _, err := JudgeLag(tc.l, 3, time.Hour, 0); !errors.Is(err, ErrLagUnknown) {
			t.Errorf("%s: %v, want ErrLagUnknown", tc.name, err)
		}
	}
}
