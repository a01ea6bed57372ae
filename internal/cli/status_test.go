package cli

import (
	"testing"

	"github.com/siteflip/siteflip/internal/status"
)

// A resource's row speaks its class's terms: a database is a primary or a
// standby that streams, a traffic resource is active or parked and ready.
func TestResourceCells(t *testing.T) {
	tests := []struct {
		class                 string
		s                     status.ResourceSiteStatus
		role, timeline, ready string
	}{
		{"data", status.ResourceSiteStatus{Role: status.RolePrimary, Timeline: 3}, "primary", "3", "-"},
		{"data", status.ResourceSiteStatus{Role: status.RoleStandby, Timeline: 3, Streaming: true}, "standby", "3", "streaming"},
		{"data", status.ResourceSiteStatus{Role: status.RoleStandby, Timeline: 2}, "standby", "2", "NOT STREAMING"},
		{"data", status.ResourceSiteStatus{Role: status.RoleDown}, "down", "-", "-"},
		// A database without timelines (MariaDB).
		{"data", status.ResourceSiteStatus{Role: status.RolePrimary}, "primary", "-", "-"},
		{"traffic", status.ResourceSiteStatus{Role: status.RolePrimary, Streaming: true}, "active", "-", "-"},
		{"traffic", status.ResourceSiteStatus{Role: status.RoleStandby, Streaming: true}, "parked", "-", "ready"},
		{"traffic", status.ResourceSiteStatus{Role: status.RoleStandby}, "parked", "-", "NOT READY"},
		{"traffic", status.ResourceSiteStatus{Role: status.RoleUnknown}, "unknown", "-", "-"},
		{"service", status.ResourceSiteStatus{Role: status.RolePrimary, Up: true}, "running", "-", "-"},
		{"service", status.ResourceSiteStatus{Role: status.RoleDown, Up: true}, "UNHEALTHY", "-", "-"},
		{"service", status.ResourceSiteStatus{Role: status.RoleStandby, Up: true, Streaming: true}, "stopped", "-", "ready"},
		{"service", status.ResourceSiteStatus{Role: status.RoleUnknown}, "unknown", "-", "-"},
	}
	for _, tt := range tests {
		role, timeline, ready := resourceCells(tt.class, tt.s)
		if role != tt.role || timeline != tt.timeline || ready != tt.ready {
			t.Errorf("%s %+v: %q %q %q, want %q %q %q", tt.class, tt.s, role, timeline, ready, tt.role, tt.timeline, tt.ready)
		}
	}
}
