package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// One read of the control plane serves every reader for readEvery, a
// failed one too; readers that come during a read wait for it and share
// it.
func TestStateReaderShares(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reads atomic.Int32
		var fail atomic.Bool
		r := newStateReader(func(context.Context) (status.Snapshot, status.Status, error) {
			n := reads.Add(1)
			time.Sleep(200 * time.Millisecond) // a read takes a while
			if fail.Load() {
				return status.Snapshot{Revision: 99}, status.Status{Revision: 99}, errors.New("no quorum")
			}
			return status.Snapshot{Revision: int64(n)}, status.Status{Revision: int64(n)}, nil
		})
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				if _, st, err := r.state(); err != nil || st.Revision != 1 {
					t.Errorf("concurrent readers: revision %d, %v; want the first read", st.Revision, err)
				}
			})
		}
		wg.Wait()
		time.Sleep(readEvery / 2)
		if _, st, _ := r.state(); st.Revision != 1 || reads.Load() != 1 {
			t.Errorf("within readEvery: revision %d after %d reads; want the first read, once", st.Revision, reads.Load())
		}
		time.Sleep(readEvery)
		if _, st, _ := r.state(); st.Revision != 2 {
			t.Errorf("after readEvery: revision %d, want a second read", st.Revision)
		}
		fail.Store(true)
		time.Sleep(readEvery)
		for range 2 {
			if snap, st, err := r.state(); err == nil || snap.Revision != 0 || st.Revision != 0 {
				t.Errorf("a failed read: %v, revisions %d and %d; want the error and nothing else", err, snap.Revision, st.Revision)
			}
		}
		if reads.Load() != 3 {
			t.Errorf("%d reads, want 3", reads.Load())
		}
	})
}
