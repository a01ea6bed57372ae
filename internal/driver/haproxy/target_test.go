package haproxy

import "testing"

// Status shows a proxy in its own terms: the server it sends this site's
// clients to, and whether it does.
func TestTarget(t *testing.T) {
	tests := []struct {
		st   ServerState
		want string
	}{
		{ServerState{Backend: "web", Server: "brussels", Addr: "10.0.1.10", Port: 8080, Op: OpRunning, Weight: 1}, "web/brussels → 10.0.1.10:8080 serves"},
		{ServerState{Backend: "web", Server: "antwerp", Addr: "10.0.2.10", Op: OpRunning, Weight: 0}, "web/antwerp → 10.0.2.10 takes no traffic"},
	}
	for _, tt := range tests {
		if got := target(tt.st); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.st, got, tt.want)
		}
	}
}
