package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// RunRequest asks for a run: POST /v1/runs.
type RunRequest struct {
	Group          string      `json:"group"`
	Action         plan.Action `json:"action"`
	To             string      `json:"to,omitempty"`
	AcceptDataLoss bool        `json:"accept_data_loss,omitempty"`
	// Keep is how long a drill stays up after its checks.
	Keep time.Duration `json:"keep,omitempty"`
	// Reason and Ticket say why; the run and the audit trail keep them.
	Reason string `json:"reason,omitempty"`
	Ticket string `json:"ticket,omitempty"`
	// DryRun asks for the plan only: the agent admits the request as it
	// would a run (role, group free, plan built by the safety rules) and
	// answers with the run it would start, neither stored nor started.
	DryRun bool `json:"dry_run,omitempty"`
}

// StepRequest asks a site's agent to carry out one step: POST /v1/steps.
// Only the elected controller may send it, for a step of the group's run
// in progress that it stored as running; the agent reads what the step
// acts on (the site to follow, the fence's end position) from the stored
// run, not from the request (docs/design/safety.md).
type StepRequest struct {
	RunID string `json:"run_id"`
	// Step is the step's ID in the run's plan (or rollback).
	Step     string        `json:"step"`
	Group    string        `json:"group"`
	Resource string        `json:"resource"`
	Kind     plan.Kind     `json:"kind"`
	Epoch    int64         `json:"epoch"`
	Timeout  time.Duration `json:"timeout"`
	// Term is the controller's term: the create revision of its election
	// key.
	Term int64 `json:"term"`
}

// StepResult is what the agent did.
type StepResult struct {
	Output map[string]string `json:"output,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// StartRun asks any location to start a run and returns it as stored.
func (c *Client) StartRun(ctx context.Context, req RunRequest) (plan.Run, error) {
	var r plan.Run
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodPost, base+"/v1/runs", req, &r)
	})
	return r, err
}

// VerdictRequest is a person's verdict on an approval step of a run.
type VerdictRequest struct {
	// Step is the approval step's ID or its resource's name; "" when the
	// run has one approval step left.
	Step    string `json:"step,omitempty"`
	Approve bool   `json:"approve"`
	Reason  string `json:"reason,omitempty"`
}

// Verdict gives a verdict on an approval step of run id and returns it as
// stored.
func (c *Client) Verdict(ctx context.Context, id string, req VerdictRequest) (status.Approval, error) {
	var a status.Approval
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodPost, base+"/v1/runs/"+url.PathEscape(id)+"/verdict", req, &a)
	})
	return a, err
}

// Run returns one run.
func (c *Client) Run(ctx context.Context, id string) (plan.Run, error) {
	var r plan.Run
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodGet, base+"/v1/runs/"+url.PathEscape(id), nil, &r)
	})
	return r, err
}

// WaitRun reads run id every poll until it is done, and returns it; when
// ctx ends first, the error comes with the run as last read.
func (c *Client) WaitRun(ctx context.Context, id string, poll time.Duration) (plan.Run, error) {
	var last plan.Run
	var lastErr error
	t := time.NewTicker(max(poll, 10*time.Millisecond))
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := c.Run(rctx, id)
		cancel()
		if err == nil {
			if r.Done() {
				return r, nil
			}
			last = r
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, fmt.Errorf("run %s did not end: %w; its last read failed: %v", id, ctx.Err(), lastErr)
			}
			return last, fmt.Errorf("run %s did not end: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// Runs lists the runs of a group ("" for all), oldest first.
func (c *Client) Runs(ctx context.Context, group string) ([]plan.Run, error) {
	var rs []plan.Run
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodGet, base+"/v1/runs?group="+url.QueryEscape(group), nil, &rs)
	})
	return rs, err
}

// Step sends a step to the agent of site and waits for its result.
func (c *Client) Step(ctx context.Context, site string, req StepRequest) (StepResult, error) {
	s, ok := c.topo.Site(site)
	if !ok {
		return StepResult{}, fmt.Errorf("step for unknown site %q", site)
	}
	var res StepResult
	err := c.do(ctx, http.MethodPost, c.url(s, "/v1/steps"), req, &res)
	return res, err
}

// DrillCleanup asks the agent of site to remove what the drills of group
// left behind there; it returns what was removed.
func (c *Client) DrillCleanup(ctx context.Context, site, group string) ([]string, error) {
	s, ok := c.topo.Site(site)
	if !ok {
		return nil, fmt.Errorf("drill cleanup at unknown site %q", site)
	}
	var res struct {
		Removed []string `json:"removed"`
	}
	err := c.do(ctx, http.MethodPost, c.url(s, "/v1/drills/"+url.PathEscape(group)+"/cleanup"), struct{}{}, &res)
	return res.Removed, err
}

// Copy fetches from the agent of site a copy of the server of a resource
// there, for a rejoin here. Closing it says whether the copy came whole
// (the stream ended with the agent's "complete" trailer).
func (c *Client) Copy(ctx context.Context, site, group, resource string) (io.ReadCloser, error) {
	s, ok := c.topo.Site(site)
	if !ok {
		return nil, fmt.Errorf("copy from unknown site %q", site)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(s, "/v1/copy/"+url.PathEscape(group)+"/"+url.PathEscape(resource)), nil)
	if err != nil {
		return nil, err
	}
	// No timeout but ctx: a copy streams as long as the database is big.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("copy %s/%s from %s: %w", group, resource, site, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("copy %s/%s from %s: %s: %s", group, resource, site, resp.Status, strings.TrimSpace(string(b)))
	}
	return &copyBody{resp: resp, from: site}, nil
}

// copyBody is a copy being received.
type copyBody struct {
	resp *http.Response
	from string
	eof  bool
}

func (b *copyBody) Read(p []byte) (int, error) {
	n, err := b.resp.Body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close says whether the copy came whole: read to its end, with the
// sender's "complete" trailer.
func (b *copyBody) Close() error {
	_ = b.resp.Body.Close()
	switch t := b.resp.Trailer.Get("Siteflip-Copy"); {
	case !b.eof:
		return fmt.Errorf("the copy from %s was not read to its end", b.from)
	case t == "complete":
		return nil
	case t == "":
		return fmt.Errorf("the copy from %s was cut short", b.from)
	default:
		return fmt.Errorf("the copy from %s: %s", b.from, t)
	}
}

// RequestError is an answer that refuses the request (4xx): asking another
// location would give the same answer.
type RequestError struct {
	Status int
	Msg    string
	// Code is the agent's word for the refusal, when it gives one
	// (CodeBusy).
	Code string
}

func (e *RequestError) Error() string { return e.Msg }

// Is lets errors.Is tell refusals apart: every RequestError is
// ErrRefused; a 404 is also ErrNotFound; a group held by a run is also
// ErrBusy.
func (e *RequestError) Is(target error) bool {
	switch target {
	case ErrRefused:
		return true
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrBusy:
		return e.Code == CodeBusy
	}
	return false
}

// CodeBusy is the code of an agent's refusal because a run or a drill
// already holds the group.
const CodeBusy = "busy"

// Errors that errors.Is finds in what the client returns.
var (
	// ErrRefused: an agent refused the request (4xx): a safety rule, the
	// policy, a role, an unknown group or run.
	ErrRefused = errors.New("refused")
	// ErrNotFound: the group or run asked about does not exist.
	ErrNotFound = errors.New("not found")
	// ErrBusy: a run (or a drill) already holds the group; ask again when
	// it ends.
	ErrBusy = errors.New("busy")
	// ErrUnreachable: no location answered.
	ErrUnreachable = errors.New("no location answered")
)

// any tries the locations in turn until one answers; a refusal (4xx) is
// final.
func (c *Client) any(ctx context.Context, call func(ctx context.Context, base string) error) error {
	var errs []string
	for i := range c.topo.Sites {
		s := &c.topo.Sites[i]
		err := call(ctx, strings.TrimSuffix(c.url(s, ""), "/"))
		var re *RequestError
		if err == nil || errors.As(err, &re) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", s.Name, err))
	}
	return fmt.Errorf("%w:\n  %s", ErrUnreachable, strings.Join(errs, "\n  "))
}

// do sends one JSON request; a step may take minutes, so it has no
// timeout of its own beyond ctx.
func (c *Client) do(ctx context.Context, method, u string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error, Code string }
		msg := fmt.Sprintf("%s %s answered %s", method, u, resp.Status)
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return &RequestError{Status: resp.StatusCode, Msg: msg, Code: e.Code}
		}
		return errors.New(msg)
	}
	return json.Unmarshal(data, out)
}

// Audit returns the audit trail since a time, oldest first (at most limit
// records, the newest).
func (c *Client) Audit(ctx context.Context, since time.Time, limit int) ([]audit.Record, error) {
	var rs []audit.Record
	q := url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}, "limit": {strconv.Itoa(limit)}}
	err := c.any(ctx, func(ctx context.Context, base string) error {
		return c.do(ctx, http.MethodGet, base+"/v1/audit?"+q.Encode(), nil, &rs)
	})
	return rs, err
}
