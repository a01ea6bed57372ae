package approval

import (
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

func TestPrepare(t *testing.T) {
	s := &Settings{Message: "storage read-write?"}
	if probs := Prepare(s, "brussels", ""); len(probs) > 0 {
		t.Fatalf("problems %v", probs)
	}
	if s.ApprovalTimeout() != 30*time.Minute || s.ApprovalMessage() != "storage read-write?" {
		t.Errorf("timeout %s message %q: want the default 30m and the message", s.ApprovalTimeout(), s.ApprovalMessage())
	}
	zero := config.Duration(0)
	probs := Prepare(&Settings{Timeout: &zero}, "brussels", "")
	if len(probs) != 1 || probs[0].Field != "timeout" || !strings.Contains(probs[0].Msg, "must be more than 0") {
		t.Errorf("a zero timeout: %v", probs)
	}
}

func TestLint(t *testing.T) {
	s := &Settings{}
	Prepare(s, "brussels", "")
	if w := Lint(&config.Group{Name: "webshop", Policy: config.PolicyManual}, s); len(w) != 0 {
		t.Errorf("a manual group: %v", w)
	}
	w := Lint(&config.Group{Name: "webshop", Policy: config.PolicyAutomatic}, s)
	if len(w) != 1 || !strings.Contains(w[0].Msg, "an automatic failover waits at this approval") {
		t.Errorf("an automatic group: %v", w)
	}
}
