package bgp

import (
	"net/netip"
	"testing"
)

// Status shows a route in its own terms: where it is announced.
func TestAnnounced(t *testing.T) {
	p := netip.MustParsePrefix("10.1.0.0/24")
	tests := []struct {
		best, backup []string
		want         string
	}{
		{nil, nil, "10.1.0.0/24 not announced"},
		{[]string{"10.0.0.1", "10.0.0.2"}, nil, "10.1.0.0/24 announced to 10.0.0.1, 10.0.0.2"},
		{nil, []string{"10.0.0.1"}, "10.1.0.0/24 announced as a backup to 10.0.0.1"},
		{[]string{"10.0.0.1"}, []string{"10.0.0.2"}, "10.1.0.0/24 announced to 10.0.0.1, as a backup to 10.0.0.2"},
	}
	for _, tt := range tests {
		if got := announced(p, tt.best, tt.backup); got != tt.want {
			t.Errorf("%v %v: %q, want %q", tt.best, tt.backup, got, tt.want)
		}
	}
}
