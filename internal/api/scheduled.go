package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// ScheduleRequest schedules a switchover: POST /v1/scheduled.
type ScheduleRequest struct {
	Group  string    `json:"group"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
	Ticket string    `json:"ticket,omitempty"`
}

// CancelResult is the answer to DELETE /v1/scheduled/{group}: whether a
// scheduled switchover was cancelled (cancelling none is not an error),
// and which.
type CancelResult struct {
	Group     string                      `json:"group"`
	Cancelled bool                        `json:"cancelled"`
	Scheduled *status.ScheduledSwitchover `json:"scheduled,omitempty"`
}

// Schedule asks any location to schedule a switchover and returns it as
// stored.
func (c *Client) Schedule(ctx context.Context, req ScheduleRequest) (status.ScheduledSwitchover, error) {
	var sc status.ScheduledSwitchover
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodPost, base+"/v1/scheduled", req, &sc)
	})
	return sc, err
}

// CancelScheduled asks any location to cancel group's scheduled
// switchover.
func (c *Client) CancelScheduled(ctx context.Context, group string) (CancelResult, error) {
	var res CancelResult
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodDelete, base+"/v1/scheduled/"+url.PathEscape(group), nil, &res)
	})
	return res, err
}
