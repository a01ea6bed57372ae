package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/siteflip/siteflip/internal/status"
)

// PauseRequest pauses a group's automatic actions: POST
// /v1/groups/{group}/pause. Reason and Ticket say why; the pause and the
// audit trail keep them.
type PauseRequest struct {
	Reason string `json:"reason,omitempty"`
	Ticket string `json:"ticket,omitempty"`
}

// ResumeRequest lifts a group's pause: POST /v1/groups/{group}/resume.
type ResumeRequest struct {
	Reason string `json:"reason,omitempty"`
	Ticket string `json:"ticket,omitempty"`
}

// PauseResult is the answer to a pause or a resume: whether the group is
// paused now, whether this request changed it (pausing a paused group, or
// resuming one that is not paused, changes nothing and is not an error),
// and the pause in force or, for a resume, the one lifted.
type PauseResult struct {
	Group   string        `json:"group"`
	Paused  bool          `json:"paused"`
	Changed bool          `json:"changed"`
	Pause   *status.Pause `json:"pause,omitempty"`
}

// Pause asks any location to pause group's automatic actions.
func (c *Client) Pause(ctx context.Context, group string, req PauseRequest) (PauseResult, error) {
	var res PauseResult
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodPost, base+"/v1/groups/"+url.PathEscape(group)+"/pause", req, &res)
	})
	return res, err
}

// Resume asks any location to lift group's pause.
func (c *Client) Resume(ctx context.Context, group string, req ResumeRequest) (PauseResult, error) {
	var res PauseResult
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodPost, base+"/v1/groups/"+url.PathEscape(group)+"/resume", req, &res)
	})
	return res, err
}
