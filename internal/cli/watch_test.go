package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/siteflip/siteflip/internal/status"
)

// status --watch -o json writes one status object per line and nothing
// else on stdout: no screen escapes, a failed ask on stderr.
func TestWatchJSONLines(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	get := func(context.Context) (status.Status, error) {
		calls++
		switch calls {
		case 2:
			return status.Status{}, errors.New("no location answered")
		case 4:
			cancel()
		}
		return status.Status{Installation: "shop", AnsweredBy: "brussels", Groups: []status.GroupStatus{{Name: "webshop", ActiveSite: "brussels"}}}, nil
	}
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut}
	if err := watchStatus(ctx, e, get, "json", true, false, 0); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "\033") {
		t.Errorf("escape sequences in the JSON: %q", out.String())
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		var st status.Status
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			t.Fatalf("line %d is not one status object: %v\n%s", lines, err, sc.Text())
		}
		if st.Installation != "shop" || len(st.Groups) != 1 {
			t.Errorf("line %d: %+v", lines, st)
		}
	}
	// Calls 1 and 3 print; 2 failed; 4 was interrupted.
	if lines != 2 {
		t.Errorf("%d lines, want 2:\n%s", lines, out.String())
	}
	if !strings.Contains(errOut.String(), "no location answered") {
		t.Errorf("stderr %q lacks the failed ask", errOut.String())
	}

	// As text, --watch redraws the screen.
	out.Reset()
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	calls = 2
	if err := watchStatus(ctx, e, get, "text", true, false, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), clearScreen) {
		t.Errorf("text --watch does not clear the screen: %q", out.String()[:min(40, out.Len())])
	}
}
