// Package api is the client side of the agents' HTTP API: it finds a
// location that answers and decodes its replies. The CLI uses it; the
// server side lives in internal/agent.
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/status"
)

// Client talks to the agents of one topology.
type Client struct {
	topo *config.Topology
	http *http.Client
}

// NewClient returns a client that authenticates with the operator
// credential of t when TLS is on.
func NewClient(t *config.Topology) (*Client, error) {
	var tlsConfig *tls.Config
	if t.TLSEnabled() {
		if t.Operator.CertFile == "" {
			return nil, fmt.Errorf("%s: a credential is needed to talk to the agents over TLS: give --cert and --key (or $SITEFLIP_CERT, $SITEFLIP_KEY), or set operator.cert_file and operator.key_file", t.File)
		}
		var err error
		tlsConfig, err = pki.ClientConfig(pki.Files{CA: t.TLS.CAFile, Cert: t.Operator.CertFile, Key: t.Operator.KeyFile}, "")
		if err != nil {
			// Only this credential is read here: the locations' keys live
			// on their own machines (docs/certificates.md).
			return nil, fmt.Errorf("your credential (--cert/--key, else operator: in %s): %w", t.File, err)
		}
	}
	return NewClientTLS(t, tlsConfig), nil
}

// NewClientTLS returns a client that authenticates with tlsConfig (an
// agent uses its own location's certificate).
func NewClientTLS(t *config.Topology, tlsConfig *tls.Config) *Client {
	return &Client{topo: t, http: &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: tlsConfig,
			// A location whose packets vanish must not hold a call for
			// the whole step timeout before the first byte.
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			TLSHandshakeTimeout: 3 * time.Second,
		},
	}}
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) url(site *config.Site, path string) string {
	scheme := "http"
	if c.topo.TLSEnabled() {
		scheme = "https"
	}
	return scheme + "://" + site.Agent.Address + path
}

// Status asks every location at once and returns the first full answer. A
// location that is down or cut off from the quorum does not answer; the
// error lists why each one failed.
func (c *Client) Status(ctx context.Context) (status.Status, error) {
	type answer struct {
		i   int
		st  status.Status
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan answer, len(c.topo.Sites))
	for i := range c.topo.Sites {
		s := &c.topo.Sites[i]
		go func() {
			var st status.Status
			err := c.get(ctx, s, "/v1/status", &st)
			answers <- answer{i, st, err}
		}()
	}
	errs := make([]string, len(c.topo.Sites))
	for range c.topo.Sites {
		a := <-answers
		if a.err == nil {
			return a.st, nil
		}
		errs[a.i] = fmt.Sprintf("%s: %v", c.topo.Sites[a.i].Name, a.err)
	}
	return status.Status{}, fmt.Errorf("no location answered:\n  %s", strings.Join(errs, "\n  "))
}

// Wait asks for the status every interval until cond accepts one, and
// returns it. When ctx ends first it returns the last status seen and an
// error that says why the last attempt did not satisfy cond.
func (c *Client) Wait(ctx context.Context, interval time.Duration, cond func(status.Status) bool) (status.Status, error) {
	var last status.Status
	lastErr := errors.New("no answer yet")
	for {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := c.Status(qctx)
		cancel()
		switch {
		case err == nil && cond(st):
			return st, nil
		case err == nil:
			last, lastErr = st, errors.New("the condition does not hold yet")
		default:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%w: %v", ctx.Err(), lastErr)
		case <-time.After(interval):
		}
	}
}

func (c *Client) get(ctx context.Context, s *config.Site, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(s, path), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap()
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s answered %s", path, resp.Status)
	}
	return json.Unmarshal(body, out)
}
