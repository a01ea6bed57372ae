package check

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/siteflip/siteflip/internal/resource"
)

// Probe asks the question of s once (a service's health probe: an http
// or tcp question, with its addresses written in full, no placeholders),
// bounded by s.Timeout and ctx. seen is what it saw; the error says what
// was expected and what was seen instead.
func Probe(ctx context.Context, s *Settings) (seen string, err error) {
	v := &verifier{s: s}
	if h := s.HTTP; h != nil && h.Body != "" {
		if v.body, err = regexp.Compile(h.Body); err != nil {
			return "", fmt.Errorf("http.body: %w", err)
		}
	}
	out, err := v.Verify(ctx, nil)
	// Verify names the check resource first; a probe has none.
	if u := errors.Unwrap(err); u != nil {
		err = u
	}
	return out[resource.OutputSeen], err
}
