//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/lab"
)

// TestStackActiveSiteKilled: webshop as a web stack (storage script, app
// service, HAProxy in front); a power cut at brussels fails the whole
// stack over by itself: orders through the proxy are served by antwerp's
// app again, and the database invariants hold (never two writable, no
// acknowledged write lost beyond the asynchronous bound).
func TestStackActiveSiteKilled(t *testing.T) {
	e := start(t, Options{Stack: true})
	urls, err := lab.StackURLs(e.Lab.Dir)
	if err != nil || len(urls) == 0 {
		t.Fatalf("the lab has no web stack: %v", err)
	}
	o := &orderer{url: urls[0]}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go o.run(ctx)
	waitFor(t, 20*time.Second, "orders served at brussels", func() bool { _, ok := o.first("brussels", time.Time{}); return ok })
	event := time.Now()
	if err := lab.Disaster(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "antwerp")
	var first time.Time
	waitFor(t, 30*time.Second, "an order served by antwerp's app", func() bool {
		var ok bool
		first, ok = o.first("antwerp", event)
		return ok
	})
	cancel()
	t.Logf("stack RTO: power cut → first order through the proxy served at antwerp %s", first.Sub(event).Round(time.Millisecond))
	logSteps(t, e, event)
	check(t, e, event, 5*time.Second)
}

// orderer places orders over HTTP through the proxy and remembers which
// site's app served each, and when.
type orderer struct {
	url    string
	mu     sync.Mutex
	served []servedOrder
}

type servedOrder struct {
	at   time.Time
	site string
}

func (o *orderer) run(ctx context.Context) {
	client := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url+"/orders", bytes.NewReader(nil))
		if err != nil {
			return
		}
		resp, err := client.Do(req)
		if err == nil {
			var body struct {
				Site string `json:"site"`
			}
			if resp.StatusCode == http.StatusCreated && json.NewDecoder(resp.Body).Decode(&body) == nil {
				o.mu.Lock()
				o.served = append(o.served, servedOrder{at: time.Now(), site: body.Site})
				o.mu.Unlock()
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// first is when site first served an order after since.
func (o *orderer) first(site string, since time.Time) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.served {
		if s.site == site && s.at.After(since) {
			return s.at, true
		}
	}
	return time.Time{}, false
}
