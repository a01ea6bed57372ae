package agent

import (
	"context"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// stateReader is the agent's shared reading of the installation: the
// control plane's snapshot and the status assembled from it, as GET
// /v1/status answers it. The metrics, the dashboard's events and the lag
// history all read it, and one read serves them all for readEvery, so
// that their costs do not add up: two Prometheus servers, a hundred open
// pages and the lag sampler read the control plane once a second at most.
// GET /v1/status itself reads afresh: a person who just changed something
// sees it.
type stateReader struct {
	// read reads the control plane and assembles the status.
	read func(context.Context) (status.Snapshot, status.Status, error)

	// lock is held during a read: callers that come meanwhile wait for
	// it and share it. A channel, not a mutex: a wait on it is one that
	// testing/synctest can tell is blocked.
	lock chan struct{}
	at   time.Time // of the last read; zero before the first
	snap status.Snapshot
	st   status.Status
	err  error
}

// readEvery is how long one read of the control plane serves its readers;
// planeReadTimeout how long they wait for it.
const (
	readEvery        = time.Second
	planeReadTimeout = 3 * time.Second
)

func newStateReader(read func(context.Context) (status.Snapshot, status.Status, error)) *stateReader {
	return &stateReader{read: read, lock: make(chan struct{}, 1)}
}

// state is the installation as last read, read again when older than
// readEvery; err says why the control plane could not be read (no quorum
// where this agent stands), and then the snapshot and status are empty.
func (r *stateReader) state() (status.Snapshot, status.Status, error) {
	r.lock <- struct{}{}
	defer func() { <-r.lock }()
	if !r.at.IsZero() && time.Since(r.at) < readEvery {
		return r.snap, r.st, r.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), planeReadTimeout)
	defer cancel()
	r.snap, r.st, r.err = r.read(ctx)
	if r.err != nil {
		r.snap, r.st = status.Snapshot{}, status.Status{}
	}
	r.at = time.Now()
	return r.snap, r.st, r.err
}

// readStatus reads the control plane and assembles the status as GET
// /v1/status answers it: with the directions of the runs in progress and
// the locations a force left out.
func (srv *apiServer) readStatus(ctx context.Context) (status.Snapshot, status.Status, error) {
	snap, err := srv.plane.snapshot(ctx)
	if err != nil {
		return status.Snapshot{}, status.Status{}, err
	}
	snap.RunPlans = srv.runPlans(ctx, snap.Running)
	st := srv.plane.assemble(snap)
	srv.force.noteForced(ctx, &st)
	return snap, st, nil
}
