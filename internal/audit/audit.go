// Package audit owns the audit trail: the record every state-changing
// request to an agent leaves, allowed or refused, and the writer that
// stores records in batches off the request path, rate-limits refusals per
// identity and keeps the trail's retention bounded. Storing is the
// control plane's (coord implements Sink); nothing here talks to etcd.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Results of a request.
const (
	Done    = "done"    // carried out
	Refused = "refused" // not allowed, or not valid
	Failed  = "failed"  // allowed, but it did not work
)

// Retention of the trail: the controller keeps the newest Keep records and
// none older than MaxAge.
const (
	Keep   = 20000
	MaxAge = 90 * 24 * time.Hour
)

// Record is one request and what became of it.
type Record struct {
	At   time.Time `json:"at"`
	Site string    `json:"site"` // the location that answered
	// Who is the caller's certificate name, Role what it is: admin,
	// operator, viewer, none, location or anonymous.
	Who  string `json:"who"`
	Role string `json:"role"`
	// Via is how the caller proved who it is: certificate or token ("" when
	// anonymous or nothing was presented).
	Via     string `json:"via,omitempty"`
	From    string `json:"from"`    // client address
	Request string `json:"request"` // method and path
	// Action says what was asked, in words: "switchover webshop --to
	// antwerp", "promote db@antwerp".
	Action string `json:"action,omitempty"`
	Group  string `json:"group,omitempty"`
	Run    string `json:"run,omitempty"`
	// Reason and Ticket are what the caller gave as the why.
	Reason string `json:"reason,omitempty"`
	Ticket string `json:"ticket,omitempty"`
	Result string `json:"result"`
	Code   int    `json:"code"`
	Error  string `json:"error,omitempty"`
	// Suppressed counts this identity's refusals at this location that
	// were not recorded one by one since its previous record.
	Suppressed int `json:"suppressed,omitempty"`
	// Routine records may wait for the next batch (Writer.Record).
	Routine bool `json:"-"`
}

// Sink stores records.
type Sink interface {
	PutAudit(ctx context.Context, recs []Record) error
}

// Writer stores records in batches. Record never blocks a request.
type Writer struct {
	sink Sink
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	queue   []Record
	limits  map[string]*rate.Limiter // refusals per identity
	dropped map[string]int           // refusals not recorded, per identity
	lost    int                      // records dropped because the queue was full
	failing bool                     // the last store failed (logged once)
	wake    chan struct{}
}

// Limits of the writer.
const (
	maxQueue       = 4096
	batchSize      = 64
	flushInterval  = time.Second
	refusalRate    = 2 // refusals recorded per second and identity …
	refusalBurst   = 20
	storeTimeout   = 2 * time.Second
	drainOnStop    = 2 * time.Second
	maxLimiterKeys = 1024
)

// NewWriter returns a writer into sink; now stamps the records.
func NewWriter(sink Sink, log *slog.Logger, now func() time.Time) *Writer {
	return &Writer{sink: sink, log: log, now: now, limits: map[string]*rate.Limiter{}, dropped: map[string]int{}, wake: make(chan struct{}, 1)}
}

// Record queues r. Refusals beyond refusalRate per identity are counted,
// not queued: a caller hammering a refused endpoint cannot fill the
// control plane. Every record is also logged.
//
// Routine records (a step the controller asked for and that was carried
// out, which its run records too) are stored with the next batch, within a
// second; the others at once. Every etcd write is a disk flush that the
// databases on the same disk wait behind: a switchover measured 90 ms
// slower with its steps' records stored one by one.
func (w *Writer) Record(r Record) {
	if r.At.IsZero() {
		r.At = w.now().UTC()
	}
	w.mu.Lock()
	if r.Result == Refused {
		key := r.Who + "\x00" + r.From
		l, ok := w.limits[key]
		if !ok {
			if len(w.limits) >= maxLimiterKeys {
				w.limits = map[string]*rate.Limiter{} // forget; a flood from many names is still bounded per second
			}
			l = rate.NewLimiter(refusalRate, refusalBurst)
			w.limits[key] = l
		}
		if !l.AllowN(r.At, 1) {
			w.dropped[key]++
			w.mu.Unlock()
			return
		}
		r.Suppressed, w.dropped[key] = w.dropped[key], 0
	}
	if len(w.queue) >= maxQueue {
		w.lost++
		w.mu.Unlock()
		w.log.Error("audit queue full: record dropped", "who", r.Who, "request", r.Request, "result", r.Result)
		return
	}
	w.queue = append(w.queue, r)
	w.mu.Unlock()
	level := slog.LevelInfo
	if r.Result != Done {
		level = slog.LevelWarn
	}
	w.log.Log(context.Background(), level, "audit", "who", r.Who, "role", r.Role, "from", r.From, "request", r.Request,
		"action", r.Action, "result", r.Result, "code", r.Code, "error", r.Error)
	if r.Routine {
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run stores queued records until ctx ends, then tries once more for a
// short while.
func (w *Writer) Run(ctx context.Context) error {
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainOnStop)
			w.flush(dctx)
			cancel()
			return nil
		case <-tick.C:
		case <-w.wake:
		}
		w.flush(ctx)
	}
}

// flush stores what is queued, a batch at a time; a batch that cannot be
// stored goes back to the front of the queue.
func (w *Writer) flush(ctx context.Context) {
	for ctx.Err() == nil {
		w.mu.Lock()
		n := min(len(w.queue), batchSize)
		batch := append([]Record(nil), w.queue[:n]...)
		w.mu.Unlock()
		if n == 0 {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := w.sink.PutAudit(sctx, batch)
		cancel()
		w.mu.Lock()
		if err != nil {
			if ctx.Err() == nil && !w.failing {
				w.log.Warn("cannot store audit records yet; they stay queued", "records", len(w.queue), "error", err)
			}
			w.failing = true
			w.mu.Unlock()
			return
		}
		if w.failing {
			w.log.Info("audit records stored again", "lost_to_a_full_queue", w.lost)
		}
		w.failing = false
		w.queue = w.queue[n:]
		w.mu.Unlock()
	}
}

// Pending is how many records wait to be stored.
func (w *Writer) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}
