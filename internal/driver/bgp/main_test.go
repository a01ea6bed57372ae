package bgp

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(siteEnv) != "" {
		siteMain()
		return
	}
	goleak.VerifyTestMain(m,
		// GoBGP v4.8.0 closes a stopped peer's outgoing queue and drains it
		// without blocking (drainChannel in pkg/server/util.go); when
		// messages were still queued, the queue's goroutine stays blocked
		// on sending them, one per peer and Stop.
		goleak.IgnoreTopFunction("github.com/eapache/channels.(*InfiniteChannel).infiniteBuffer"),
	)
}
