package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/whatif"
)

// WhatIf asks the locations in turn what the disaster q would do, until
// one answers: any location that reads the control plane can, so it works
// while a site is down already.
func (c *Client) WhatIf(ctx context.Context, q whatif.Question) (jsonview.WhatIf, error) {
	var doc jsonview.WhatIf
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodGet, base+"/v1/whatif?"+q.Query().Encode(), nil, &doc)
	})
	var re *RequestError
	if errors.As(err, &re) && re.Status == http.StatusNotFound {
		return doc, fmt.Errorf("%w: the agent does not answer what-if questions: upgrade the agents to this version of siteflip", err)
	}
	return doc, err
}
