package depprobe

import (
	"testing"

	"go.uber.org/goleak"
)

// A probe leaves nothing running behind it: the agent runs one every few
// seconds for ever.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
