package watchdog

import (
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type fenceLog struct {
	mu  sync.Mutex
	got []string
	at  []time.Time
}

func (f *fenceLog) fence(t Target) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, t.Name)
	f.at = append(f.at, time.Now())
	return true, nil
}

func (f *fenceLog) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func send(t *testing.T, w io.Writer, m message) {
	t.Helper()
	data, _ := json.Marshal(m)
	if _, err := w.Write(append(data, '\n')); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T) (*io.PipeWriter, *fenceLog, chan error) {
	r, w := io.Pipe()
	f := &fenceLog{}
	done := make(chan error, 1)
	go func() { done <- Run(r, f.fence, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { w.Close() })
	return w, f, done
}

var db = []Target{{Name: "shop/db", Kind: "postgres", DataDir: "/nonexistent"}}

func TestRenewedLeaseFencesNothing(t *testing.T) {
	w, f, done := start(t)
	for range 10 {
		send(t, w, message{Guard: db, LeaseMs: 100})
		time.Sleep(30 * time.Millisecond)
	}
	send(t, w, message{Release: true})
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := f.names(); len(got) != 0 {
		t.Fatalf("fenced %v although the lease was renewed, then released", got)
	}
}

func TestLeaseRunsOutWhileAgentStuck(t *testing.T) {
	w, f, done := start(t)
	sent := time.Now()
	send(t, w, message{Guard: db, LeaseMs: 150})
	time.Sleep(400 * time.Millisecond)
	got := f.names()
	if len(got) != 1 || got[0] != "shop/db" {
		t.Fatalf("fenced %v, want [shop/db]", got)
	}
	if d := f.at[0].Sub(sent); d < 150*time.Millisecond {
		t.Fatalf("fenced %v after the lease was given for 150ms: too early", d)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) although the agent is still there", err)
	default:
	}
	// The agent may get the lease again and guard again.
	send(t, w, message{Guard: db, LeaseMs: 50})
	time.Sleep(200 * time.Millisecond)
	if got := f.names(); len(got) != 2 {
		t.Fatalf("fenced %v, want a second fence after the second lease ran out", got)
	}
}

func TestAgentGoneFencesAtDeadlineAndExits(t *testing.T) {
	w, f, done := start(t)
	sent := time.Now()
	send(t, w, message{Guard: db, LeaseMs: 200})
	w.Close() // the agent died
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after the agent was gone and the lease ran out")
	}
	got := f.names()
	if len(got) != 1 {
		t.Fatalf("fenced %v, want [shop/db]", got)
	}
	if d := f.at[0].Sub(sent); d < 200*time.Millisecond {
		t.Fatalf("fenced %v after the last renewal of a 200ms lease: the lease still ran", d)
	}
}

func TestNothingGuardedExitsWithAgent(t *testing.T) {
	w, f, done := start(t)
	send(t, w, message{Guard: []Target{}, LeaseMs: 5000})
	w.Close()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run with nothing to guard did not end with the agent")
	}
	if got := f.names(); len(got) != 0 {
		t.Fatalf("fenced %v with nothing guarded", got)
	}
}

// TestTransitTakenOff: the lease the agent reports ran from when it wrote
// the line; the time the line took to be read (a loaded machine) is taken
// off, unless the clock seems to have been set meanwhile.
func TestTransitTakenOff(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sentAgo time.Duration
		fenceAt time.Duration // after the line was read
	}{
		{"read at once", 0, 150 * time.Millisecond},
		{"read 100 ms late", 100 * time.Millisecond, 50 * time.Millisecond},
		{"clock set back meanwhile", -time.Hour, 150 * time.Millisecond},
		{"clock set forward meanwhile", time.Hour, 150 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, f, _ := start(t)
				read := time.Now()
				send(t, w, message{Guard: db, LeaseMs: 150, SentUnixNano: read.Add(-tt.sentAgo).UnixNano()})
				time.Sleep(tt.fenceAt - time.Millisecond)
				synctest.Wait()
				if got := f.names(); len(got) != 0 {
					t.Fatalf("fenced %v before %s", got, tt.fenceAt)
				}
				time.Sleep(time.Millisecond)
				synctest.Wait()
				if got := f.names(); len(got) != 1 {
					t.Fatalf("fenced %v at %s, want [shop/db]", got, tt.fenceAt)
				}
				w.Close()
			})
		})
	}
}
