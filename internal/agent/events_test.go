package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// fakeFeed is the control plane as the events read it: a status whose
// read time is that of each read, the runs, and the reads counted.
type fakeFeed struct {
	mu          sync.Mutex
	revision    int64
	err         error
	runs        []plan.Run
	statusReads int
}

func (f *fakeFeed) feed() feed {
	return feed{
		status: func() (status.Status, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.statusReads++
			if f.err != nil {
				return status.Status{}, f.err
			}
			return status.Status{Installation: "lab", AnsweredBy: "brussels", Time: time.Now(), Revision: f.revision}, nil
		},
		runs: func(context.Context) ([]plan.Run, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.runs, nil
		},
		unavailable: func(err error) any { return map[string]string{"error": err.Error(), "site": "brussels"} },
	}
}

func (f *fakeFeed) set(change func(*fakeFeed)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeFeed) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusReads
}

// received drains what sub holds, as "name revision" for a status,
// "runs N" for runs and "unavailable" for the other.
func received(t *testing.T, sub *subscriber) []string {
	t.Helper()
	var out []string
	for {
		select {
		case ev := <-sub.events:
			out = append(out, describe(t, ev.name, ev.data))
		default:
			return out
		}
	}
}

func describe(t *testing.T, name string, data []byte) string {
	t.Helper()
	switch name {
	case eventStatus:
		var st jsonview.Status
		if err := json.Unmarshal(data, &st); err != nil || st.Kind != jsonview.KindStatus || st.ReadAt.IsZero() {
			t.Fatalf("status event %s: %v", data, err)
		}
		return "status " + strconv.FormatInt(st.Revision, 10)
	case eventRuns:
		var runs jsonview.Runs
		if err := json.Unmarshal(data, &runs); err != nil || runs.Kind != jsonview.KindRuns {
			t.Fatalf("runs event %s: %v", data, err)
		}
		ids := []string{}
		for _, r := range runs.Runs {
			ids = append(ids, r.ID)
		}
		return "runs " + strings.Join(ids, ",")
	case eventUnavailable:
		var u struct{ Error, Site string }
		if err := json.Unmarshal(data, &u); err != nil || u.Error == "" || u.Site != "brussels" {
			t.Fatalf("unavailable event %s: %v", data, err)
		}
		return "unavailable"
	}
	t.Fatalf("unknown event %q", name)
	return ""
}

// The broadcaster reads nothing while nobody listens; a stream gets the
// status and runs at once, then only what changes (the read time aside),
// the status again at least every statusResend, and unavailable while
// the control plane cannot be read. A stream that falls behind is closed
// without holding the others; the last one gone, reading stops; the
// agent stopping closes them all.
func TestBroadcaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeFeed{revision: 1, runs: []plan.Run{{ID: "r2"}, {ID: "r1"}}}
		b := newBroadcaster(f.feed(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.run(ctx) }()
		expect := func(sub *subscriber, what string, want ...string) {
			t.Helper()
			synctest.Wait()
			if got := received(t, sub); strings.Join(got, "; ") != strings.Join(want, "; ") {
				t.Errorf("%s: received %q, want %q", what, got, want)
			}
		}

		time.Sleep(time.Minute)
		synctest.Wait()
		if n := f.reads(); n != 0 {
			t.Errorf("%d reads while nobody listened", n)
		}

		fast, leaveFast := b.subscribe()
		expect(fast, "a new stream", "status 1", "runs r2,r1")
		time.Sleep(10 * time.Second) // only the read time changes
		expect(fast, "an unchanged status")
		if n := f.reads(); n < 10 || n > 11 {
			t.Errorf("%d reads in 10 s, want one a second", n)
		}
		time.Sleep(5 * time.Second)
		expect(fast, "15 s on", "status 1")

		f.set(func(f *fakeFeed) { f.revision = 2 })
		time.Sleep(time.Second)
		expect(fast, "a change of status", "status 2")
		f.set(func(f *fakeFeed) { f.runs = append([]plan.Run{{ID: "r3"}}, f.runs...) })
		time.Sleep(time.Second)
		expect(fast, "a new run", "runs r3,r2,r1")

		// A second stream gets the last events at once.
		slow, leaveSlow := b.subscribe()
		defer leaveSlow()
		if got := received(t, slow); strings.Join(got, "; ") != "status 2; runs r3,r2,r1" {
			t.Errorf("a second stream received %q at once", got)
		}
		// It reads nothing more: once its buffer is full it is closed;
		// the other stream gets every change.
		for i := range subscriberBuffer + 2 {
			f.set(func(f *fakeFeed) { f.revision = int64(10 + i) })
			time.Sleep(time.Second)
			expect(fast, "a change of status", "status "+strconv.Itoa(10+i))
		}
		select {
		case <-slow.gone:
		default:
			t.Error("a stream that fell behind is still open")
		}

		// No quorum: unavailable, again every 15 s; back: the status.
		f.set(func(f *fakeFeed) { f.err = errors.New("no quorum") })
		time.Sleep(time.Second)
		expect(fast, "the control plane lost", "unavailable")
		time.Sleep(5 * time.Second)
		expect(fast, "still lost")
		time.Sleep(10 * time.Second)
		expect(fast, "lost for 15 s", "unavailable")
		f.set(func(f *fakeFeed) { f.err = nil })
		time.Sleep(time.Second)
		expect(fast, "the control plane back", "status 27")

		// The last stream gone, reading stops; a new one starts afresh.
		leaveFast()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		before := f.reads()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := f.reads(); n != before {
			t.Errorf("%d reads in a minute with nobody listening", n-before)
		}
		// Nothing kept from before the pause for the next stream: it gets
		// what the read its arrival wakes finds. (What it receives right
		// after subscribing cannot tell: the woken read races the check.)
		b.mu.Lock()
		kept := len(b.last)
		b.mu.Unlock()
		if kept != 0 {
			t.Errorf("%d events kept through a pause, which a new stream would get stale", kept)
		}
		again, leaveAgain := b.subscribe()
		defer leaveAgain()
		expect(again, "a stream after a pause", "status 27", "runs r3,r2,r1")

		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		select {
		case <-again.gone:
		default:
			t.Error("the agent stopped and a stream is still open")
		}
		late, _ := b.subscribe()
		select {
		case <-late.gone:
		default:
			t.Error("a stream opened after the agent stopped is open")
		}
	})
}

// sseEvent is one event of a stream as a client reads it; a comment has
// the name ":".
type sseEvent struct{ name, data string }

// readSSE sends the events of a stream to ch until it ends.
func readSSE(body io.Reader, ch chan<- sseEvent) {
	defer close(ch)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				ch <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			ev.name = ":"
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// GET /v1/events over a real connection: the stream's type, the status
// and runs at once, a change, the pings; it outlives the server's read
// and write timeouts, and ends when the agent stops.
func TestEventsEndpoint(t *testing.T) {
	a, _ := guarded(t)
	f := &fakeFeed{revision: 1, runs: []plan.Run{{ID: "r1"}}}
	a.api.events = newBroadcaster(f.feed(), a.log)
	a.api.events.ping = 20 * time.Millisecond
	mux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "vera"}}}}
		mux.ServeHTTP(w, r)
	}))
	const timeout = 150 * time.Millisecond
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	defer srv.Close()
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.api.events.run(ctx) }()
	defer func() {
		stop()
		<-done
	}()

	resp, err := srv.Client().Get(srv.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/events: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	events := make(chan sseEvent)
	go readSSE(resp.Body, events)
	next := func(what string) sseEvent {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("%s: the stream ended", what)
				}
				if ev.name != ":" {
					return ev
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: nothing in 10 s", what)
			}
		}
	}
	for _, want := range []string{"status 1", "runs r1"} {
		if ev := next(want); describe(t, ev.name, []byte(ev.data)) != want {
			t.Errorf("received %s %s, want %s", ev.name, ev.data, want)
		}
	}
	f.set(func(f *fakeFeed) { f.revision = 2 })
	if ev := next("status 2"); describe(t, ev.name, []byte(ev.data)) != "status 2" {
		t.Errorf("received %s %s, want status 2", ev.name, ev.data)
	}
	// Pings, over several times the server's timeouts.
	start, pings := time.Now(), 0
	for time.Since(start) < 4*timeout || pings < 3 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended after %v, %d pings (the server's timeouts are %v)", time.Since(start), pings, timeout)
			}
			if ev.name == ":" {
				pings++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no ping in 10 s")
		}
	}
	// The agent stops: the stream ends.
	stop()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stream is still open 10 s after the agent stopped")
		}
	}
}
