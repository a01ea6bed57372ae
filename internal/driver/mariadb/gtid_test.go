package mariadb

import "testing"

// TestComparePositions: GTID positions compare domain by domain; one that
// is ahead in one domain and behind in another is not comparable.
func TestComparePositions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
		ok   bool
	}{
		{"0-1-12", "0-1-9", 1, true},
		{"0-1-9", "0-2-12", -1, true}, // the server id does not matter
		{"0-1-12", "0-1-12", 0, true},
		{"0-1-12,1-2-5", "0-1-12", 1, true}, // a domain only a has
		{"0-1-12", "0-1-12,1-2-5", -1, true},
		{"0-1-13,1-2-4", "0-1-12,1-2-5", 0, false},
		{"", "", 0, true},
		{"", "0-1-1", -1, true},
		{"0-1-x", "0-1-1", 0, false},
	} {
		got, ok := comparePositions(tc.a, tc.b)
		if got != tc.want || ok != tc.ok {
			t.Errorf("comparePositions(%q, %q) = %d, %v; want %d, %v", tc.a, tc.b, got, ok, tc.want, tc.ok)
		}
	}
}
