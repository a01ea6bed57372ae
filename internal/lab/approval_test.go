package lab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// TestApprovalAndFailingScript: webshop as a stack whose runs wait for a
// person once the storage is read-write. A storage script that fails
// rolls a switchover back with its stderr; an approval lets a switchover
// go on; a rejection after the activation fails the run, and a reprotect
// starts what it left stopped.
func TestApprovalAndFailingScript(t *testing.T) {
	skipUnlessLab(t)
	o, _, c := labUpOptions(t, Options{Stack: true, Approval: true})
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))

	// The storage array at brussels does not answer: the fence of the
	// storage fails, and the run is rolled back with what it said.
	stuck := storageStuckPath(o.Dir, "brussels")
	if err := os.WriteFile(stuck, []byte("firmware upgrade in progress\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Switchover, To: "antwerp"})
	if r.State != plan.RunRolledBack || !strings.Contains(r.Error, "step fence:storage@brussels failed") ||
		!strings.Contains(r.Error, "the storage array at brussels does not answer: firmware upgrade in progress") {
		t.Fatalf("switchover with a stuck array: %s, %q; want rolled back with the script's stderr", r.State, r.Error)
	}
	if err := os.Remove(stuck); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, 60*time.Second, "protected at brussels again", protectedAt("brussels"))

	// Approved: the run waits between the storage and the app, then goes
	// on when a person says so.
	r = waitAwaiting(t, c, api.RunRequest{Group: demoGroup, Action: plan.Switchover, To: "antwerp", Reason: "test: approve"})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	a, err := c.Verdict(ctx, r.ID, api.VerdictRequest{Approve: true, Reason: "array checked"})
	cancel()
	if err != nil || !a.Approved || a.Step != "approve:"+approvalResource+"@antwerp" {
		t.Fatalf("approve: %+v, %v", a, err)
	}
	r = waitRun(t, c, r.ID)
	if r.State != plan.RunSucceeded {
		t.Fatalf("approved switchover: %s: %s", r.State, r.Error)
	}
	if out := r.OutputOf(plan.Approve, approvalResource); out["approved_by"] == "" || out["reason"] != "array checked" {
		t.Errorf("the approve step does not say who approved and why: %v", out)
	}
	waitStatus(t, c, 60*time.Second, "protected at antwerp", protectedAt("antwerp"))

	// Rejected after the activation: the run fails, the app stays stopped
	// at brussels, and the reprotect it names starts it.
	r = waitAwaiting(t, c, api.RunRequest{Group: demoGroup, Action: plan.Switchover, To: "brussels", Reason: "test: reject"})
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	_, err = c.Verdict(ctx, r.ID, api.VerdictRequest{Approve: false, Reason: "the array is degraded"})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	r = waitRun(t, c, r.ID)
	if r.State != plan.RunFailed || !strings.Contains(r.Error, "rejected by") || !strings.Contains(r.Error, "the array is degraded") ||
		!strings.Contains(r.Error, "siteflip reprotect webshop") {
		t.Fatalf("rejected switchover: %s, %q; want failed, naming the rejection and reprotect", r.State, r.Error)
	}
	if i := stepOf(r, plan.Promote, appResource, "brussels"); i < 0 || r.Steps[i].State != plan.StepPending {
		t.Errorf("the app was started at brussels after the rejection")
	}
	rp := runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Reprotect, Reason: "test: after the rejection"})
	if rp.State != plan.RunSucceeded || stepOf(rp, plan.Promote, appResource, "brussels") < 0 {
		t.Fatalf("reprotect: %s, %q; want it to start the app at brussels", rp.State, rp.Error)
	}
	waitStatus(t, c, 60*time.Second, "protected at brussels after the reprotect", protectedAt("brussels"))
}

// waitAwaiting starts a run and waits until status shows it waiting for
// the approval.
func waitAwaiting(t *testing.T, c *api.Client, req api.RunRequest) plan.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	r, err := c.StartRun(ctx, req)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, c, 60*time.Second, "run "+r.ID+" waiting for an approval", func(st status.Status) bool {
		a := group(st).Awaiting
		return a != nil && a.Run == r.ID
	})
	a := group(st).Awaiting
	if want := "storage at " + req.To + " read-write?"; a.Message != want || !strings.Contains(strings.Join(group(st).Problems, "\n"), "siteflip approve "+r.ID) {
		t.Errorf("awaiting %+v, problems %q: want the message %q and the command", a, group(st).Problems, want)
	}
	return r
}

// waitRun waits until run id has ended.
func waitRun(t *testing.T, c *api.Client, id string) plan.Run {
	t.Helper()
	var r plan.Run
	waitFor(t, 2*time.Minute, "run "+id+" to end", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		got, err := c.Run(ctx, id)
		r = got
		return err == nil && got.Done()
	})
	return r
}
