package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// The dashboard's live feed, GET /v1/events (docs/design/dashboard.md):
// server-sent events of the status and the recent runs. One broadcaster
// per agent reads them at most once a second, and only while somebody
// listens, and fans them out to every stream: a hundred open pages cost
// what one does.

// Names of the events.
const (
	eventStatus      = "status"
	eventRuns        = "runs"
	eventUnavailable = "unavailable"
)

// Timing and bounds of the events.
const (
	eventsEvery   = time.Second      // at most one read a second
	statusResend  = 15 * time.Second // a status unchanged is sent again
	pingEvery     = 10 * time.Second // a comment keeps proxies from closing the stream
	eventRunCount = 50               // the runs event holds the newest 50
	// subscriberBuffer is how many events a stream may fall behind
	// before it is closed (the page reconnects).
	subscriberBuffer = 16
)

// event is one server-sent event: its name, and its data, one line of
// JSON.
type event struct {
	name string
	data []byte
}

// feed is what the events are made of.
type feed struct {
	// status is the installation as GET /v1/status answers it.
	status func() (status.Status, error)
	// runs are the newest runs, newest first.
	runs func(ctx context.Context) ([]plan.Run, error)
	// unavailable is the document that says the control plane could not
	// be read.
	unavailable func(error) any
}

// broadcaster reads the feed for every stream.
type broadcaster struct {
	feed feed
	log  *slog.Logger
	// ping is how often streams send a comment (pingEvery; tests shorten it).
	ping time.Duration
	// wake tells run that a stream opened.
	wake chan struct{}

	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	stopped bool
	// last are the events last sent, by name: a new stream gets them at
	// once. Emptied when the last stream closes: they grow stale.
	last map[string]event

	// Owned by run: what was last sent, to tell a change.
	statusKey    []byte // the status without its read_at
	statusSentAt time.Time
	runsData     []byte
	unavailable  bool
}

// subscriber is one stream.
type subscriber struct {
	events chan event
	// gone is closed when the broadcaster lets go of the stream: it fell
	// behind, or the agent stops.
	gone chan struct{}
}

func newBroadcaster(f feed, log *slog.Logger) *broadcaster {
	return &broadcaster{feed: f, log: log, ping: pingEvery, wake: make(chan struct{}, 1),
		subs: map[*subscriber]struct{}{}, last: map[string]event{}}
}

// subscribe opens a stream, with the last events already in it; leave
// closes it.
func (b *broadcaster) subscribe() (sub *subscriber, leave func()) {
	sub = &subscriber{events: make(chan event, subscriberBuffer), gone: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		close(sub.gone)
		return sub, func() {}
	}
	for _, name := range []string{eventStatus, eventUnavailable, eventRuns} {
		if ev, ok := b.last[name]; ok {
			sub.events <- ev
		}
	}
	b.subs[sub] = struct{}{}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return sub, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, sub)
	}
}

// listened says whether a stream is open; when none is, it forgets what
// it sent, so that the next stream starts from a fresh read.
func (b *broadcaster) listened() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) > 0 {
		return true
	}
	clear(b.last)
	b.statusKey, b.runsData, b.unavailable, b.statusSentAt = nil, nil, false, time.Time{}
	return false
}

// run reads the feed every eventsEvery while a stream is open, and waits,
// reading nothing, while none is. When ctx ends it closes every stream.
func (b *broadcaster) run(ctx context.Context) error {
	defer b.stop()
	for {
		for !b.listened() {
			select {
			case <-ctx.Done():
				return nil
			case <-b.wake:
			}
		}
		b.poll(ctx)
		t := time.NewTimer(eventsEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// poll reads the feed once and sends what changed.
func (b *broadcaster) poll(ctx context.Context) {
	now := time.Now()
	st, err := b.feed.status()
	if err != nil {
		if !b.unavailable || now.Sub(b.statusSentAt) >= statusResend {
			b.send(b.encode(eventUnavailable, b.feed.unavailable(err)))
			b.unavailable, b.statusKey, b.statusSentAt = true, nil, now
		}
		return
	}
	doc := jsonview.StatusOf(st)
	data := b.encode(eventStatus, doc)
	// read_at changes at every read: a change is a change of the rest.
	doc.ReadAt = time.Time{}
	key, _ := json.Marshal(doc)
	if b.unavailable || !bytes.Equal(key, b.statusKey) || now.Sub(b.statusSentAt) >= statusResend {
		b.send(data)
		b.unavailable, b.statusKey, b.statusSentAt = false, key, now
	}
	rctx, cancel := context.WithTimeout(ctx, planeReadTimeout)
	runs, err := b.feed.runs(rctx)
	cancel()
	if err != nil {
		b.log.Debug("events: cannot read the recent runs", "error", err)
		return
	}
	if len(runs) > eventRunCount {
		runs = runs[:eventRunCount]
	}
	if ev := b.encode(eventRuns, jsonview.RunsOf(runs)); !bytes.Equal(ev.data, b.runsData) {
		b.send(ev)
		b.runsData = ev.data
	}
}

func (b *broadcaster) encode(name string, doc any) event {
	data, err := json.Marshal(doc)
	if err != nil {
		// The documents are plain data: this is a bug, said rather than hidden.
		data, _ = json.Marshal(map[string]string{"error": "encode " + name + ": " + err.Error()})
	}
	return event{name: name, data: data}
}

// send fans ev out to every stream. A stream whose buffer is full is
// closed rather than waited for: one slow page must not hold the others.
func (b *broadcaster) send(ev event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last[ev.name] = ev
	switch ev.name {
	case eventStatus:
		delete(b.last, eventUnavailable)
	case eventUnavailable:
		delete(b.last, eventStatus)
	}
	for sub := range b.subs {
		select {
		case sub.events <- ev:
		default:
			delete(b.subs, sub)
			close(sub.gone)
		}
	}
}

// stop closes every stream, and those opened later at once.
func (b *broadcaster) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	for sub := range b.subs {
		delete(b.subs, sub)
		close(sub.gone)
	}
}

// handleEvents serves one stream of events until the client goes, the
// stream falls behind, or the agent stops.
func (srv *apiServer) handleEvents(w http.ResponseWriter, r *http.Request) {
	// A stream outlives the server's WriteTimeout: its write deadline
	// moves with each write. (Its ReadTimeout ends with the request's
	// reading: net/http lifts the read deadline while a handler runs.)
	rc := http.NewResponseController(w)
	sub, leave := srv.events.subscribe()
	defer leave()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies: do not hold the events back
	w.WriteHeader(http.StatusOK)
	write := func(parts ...[]byte) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !write() {
		return
	}
	ping := time.NewTicker(srv.events.ping)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.gone:
			return
		case ev := <-sub.events:
			if !write([]byte("event: "+ev.name+"\ndata: "), ev.data, []byte("\n\n")) {
				return
			}
		case <-ping.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		}
	}
}
