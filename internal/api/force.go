package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// ForceRequest asks the agent of one site to take over alone after the
// quorum was lost: POST /v1/force (docs/force.md). Only an operator may.
type ForceRequest struct {
	Group          string `json:"group"`
	AcceptDataLoss bool   `json:"accept_data_loss,omitempty"`
	// Reason and Ticket say why; the run and the audit trail keep them.
	Reason string `json:"reason,omitempty"`
	Ticket string `json:"ticket,omitempty"`
}

// ForceResult is what the force did.
type ForceResult struct {
	// Forced is the forced location's record.
	Forced status.Forced `json:"forced"`
	// Restarted says that this request restarted the location's etcd
	// member as a new single-member cluster (false: it was forced before,
	// and this request only recovered the group); Took is how long that
	// restart took.
	Restarted bool          `json:"restarted"`
	Took      time.Duration `json:"took,omitempty"`
	// Run recovers the group at the forced location; nil when there was
	// nothing to recover (Note says why).
	Run  *plan.Run `json:"run,omitempty"`
	Note string    `json:"note,omitempty"`
}

// Force asks the agent of site, and only that one, to force.
func (c *Client) Force(ctx context.Context, site string, req ForceRequest) (ForceResult, error) {
	s, ok := c.topo.Site(site)
	if !ok {
		return ForceResult{}, fmt.Errorf("force at unknown location %q", site)
	}
	var res ForceResult
	err := c.do(ctx, http.MethodPost, c.url(s, "/v1/force"), req, &res)
	return res, err
}

// Ping says whether the agent of site answers.
func (c *Client) Ping(ctx context.Context, site string) error {
	s, ok := c.topo.Site(site)
	if !ok {
		return fmt.Errorf("unknown location %q", site)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(s, "/healthz"), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", s.Name, resp.Status)
	}
	return nil
}

// Membership is the etcd membership a location's agent sees: GET
// /v1/members. A location answers only while its member has a quorum.
type Membership struct {
	Site      string          `json:"site"` // the location that answered
	ClusterID string          `json:"cluster_id"`
	Members   []MemberInfo    `json:"members"`
	Forced    []status.Forced `json:"forced,omitempty"`
}

// MemberInfo is one etcd member.
type MemberInfo struct {
	Name     string   `json:"name"`
	PeerURLs []string `json:"peer_urls"`
	Learner  bool     `json:"learner,omitempty"`
}

// MemberRequest asks a location to add the member of Site as a learner
// (POST /v1/members) or to promote it (POST /v1/members/promote). Only the
// location itself may ask, with its own certificate.
type MemberRequest struct {
	Site string `json:"site"`
}

// MemberAdded is the membership to start the new member with
// (coord.MemberConfig.Peers with Join).
type MemberAdded struct {
	Peers map[string]string `json:"peers"`
}

// Members asks the agent of site for its etcd membership.
func (c *Client) Members(ctx context.Context, site *config.Site) (Membership, error) {
	var m Membership
	err := c.do(ctx, http.MethodGet, c.url(site, "/v1/members"), nil, &m)
	return m, err
}

// AddMember asks the agent of site to add the member of req.Site.
func (c *Client) AddMember(ctx context.Context, site *config.Site, req MemberRequest) (MemberAdded, error) {
	var out MemberAdded
	err := c.do(ctx, http.MethodPost, c.url(site, "/v1/members"), req, &out)
	return out, err
}

// PromoteMember asks the agent of site to make the member of req.Site vote.
func (c *Client) PromoteMember(ctx context.Context, site *config.Site, req MemberRequest) error {
	var out struct{}
	return c.do(ctx, http.MethodPost, c.url(site, "/v1/members/promote"), req, &out)
}

// RunAt returns one run, asking the agent of site only.
func (c *Client) RunAt(ctx context.Context, site, id string) (plan.Run, error) {
	s, ok := c.topo.Site(site)
	if !ok {
		return plan.Run{}, fmt.Errorf("unknown location %q", site)
	}
	var r plan.Run
	err := c.do(ctx, http.MethodGet, c.url(s, "/v1/runs/"+url.PathEscape(id)), nil, &r)
	return r, err
}
