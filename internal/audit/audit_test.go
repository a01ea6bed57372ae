package audit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type fakeSink struct {
	mu   sync.Mutex
	recs []Record
	fail bool
}

func (f *fakeSink) PutAudit(_ context.Context, recs []Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("no quorum")
	}
	f.recs = append(f.recs, recs...)
	return nil
}

func (f *fakeSink) stored() []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Record(nil), f.recs...)
}

func (f *fakeSink) setFail(v bool) {
	f.mu.Lock()
	f.fail = v
	f.mu.Unlock()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A caller that hammers a refused endpoint leaves a bounded number of
// records, and the next record says how many were folded into it; allowed
// requests are never dropped.
func TestRefusalsAreRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &fakeSink{}
		w := NewWriter(sink, quiet, time.Now)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()

		for range 100 {
			w.Record(Record{Who: "mallory", From: "10.9.9.9:4000", Request: "POST /v1/steps", Result: Refused, Code: 403})
		}
		for range 30 {
			w.Record(Record{Who: "ada", Request: "POST /v1/runs", Result: Done, Code: 201})
		}
		time.Sleep(10 * time.Second)
		w.Record(Record{Who: "mallory", From: "10.9.9.9:4000", Request: "POST /v1/steps", Result: Refused, Code: 403})
		time.Sleep(time.Second)
		cancel()
		<-done

		var refused, allowed, suppressed int
		for _, r := range sink.stored() {
			switch r.Who {
			case "mallory":
				refused++
				suppressed += r.Suppressed
			case "ada":
				allowed++
			}
		}
		if refused != refusalBurst+1 || suppressed != 100-refusalBurst {
			t.Errorf("mallory: %d records, %d suppressed; want %d and %d", refused, suppressed, refusalBurst+1, 100-refusalBurst)
		}
		if allowed != 30 {
			t.Errorf("allowed requests recorded: %d, want 30", allowed)
		}
	})
}

// Records that cannot be stored (no quorum) stay queued and are stored
// once the control plane answers again, in order.
func TestRecordsWaitForTheControlPlane(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &fakeSink{fail: true}
		w := NewWriter(sink, quiet, time.Now)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()
		for i := range 150 {
			w.Record(Record{Who: "ada", Action: string(rune('a' + i%26)), Result: Done})
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(sink.stored()); n != 0 || w.Pending() != 150 {
			t.Fatalf("stored %d, pending %d while the sink fails", n, w.Pending())
		}
		sink.setFail(false)
		time.Sleep(time.Second)
		cancel()
		<-done
		got := sink.stored()
		if len(got) != 150 || w.Pending() != 0 {
			t.Fatalf("stored %d, pending %d after the sink recovered", len(got), w.Pending())
		}
		for i, r := range got {
			if r.Action != string(rune('a'+i%26)) {
				t.Fatalf("record %d out of order: %q", i, r.Action)
			}
		}
	})
}

// Stopping the writer stores what is queued.
func TestStopDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &fakeSink{}
		w := NewWriter(sink, quiet, time.Now)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		w.Record(Record{Who: "ada", Result: Done})
		w.Run(ctx)
		if len(sink.stored()) != 1 {
			t.Errorf("a record queued before the stop was not stored")
		}
	})
}
