package dashboard

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	return w.Result()
}

func TestHandlerServesFilesWithTheirTypes(t *testing.T) {
	for _, tc := range []struct {
		path, contentType, cache string
	}{
		{"/", "text/html; charset=utf-8", "no-cache"},
		{"/ui/app.js", "text/javascript; charset=utf-8", "no-cache"},
		{"/ui/style.css", "text/css; charset=utf-8", "no-cache"},
		{"/ui/vendor/world-atlas/countries-50m.json", "application/json", "public, max-age=86400"},
		{"/ui/vendor/topojson-client/topojson-client.min.js", "text/javascript; charset=utf-8", "public, max-age=86400"},
		{"/ui/vendor/world-atlas/LICENSE", "text/plain; charset=utf-8", "public, max-age=86400"},
	} {
		res := get(t, tc.path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", tc.path, res.Status)
			continue
		}
		h := res.Header
		if got := h.Get("Content-Type"); got != tc.contentType {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		if got := h.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
		for k, want := range map[string]string{
			"Content-Security-Policy": ContentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s %q, want %q", tc.path, k, got, want)
			}
		}
		if h.Get("ETag") == "" {
			t.Errorf("%s: no ETag", tc.path)
		}
	}
}

func TestHandlerRefusesWhatIsNotAFile(t *testing.T) {
	for _, p := range []string{"/ui/", "/ui/vendor", "/ui/../dashboard.go", "/index.html", "/ui/nothing.js"} {
		if res := get(t, p); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s, want 404", p, res.Status)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("token=x"))
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", w.Code)
	}
}

func TestHandlerGzipsLargeFiles(t *testing.T) {
	want, err := os.ReadFile("web/vendor/world-atlas/countries-50m.json")
	if err != nil {
		t.Fatal(err)
	}
	res := get(t, "/ui/vendor/world-atlas/countries-50m.json", "Accept-Encoding", "br, gzip")
	if res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("Content-Encoding %q, Vary %q", res.Header.Get("Content-Encoding"), res.Header.Get("Vary"))
	}
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("gunzipped body differs from the file (%d bytes, want %d)", len(got), len(want))
	}
	if len(raw) > len(want)/2 {
		t.Errorf("compressed to %d bytes of %d", len(raw), len(want))
	}
	// Refused with q=0, or not asked: the file as it is.
	for _, ae := range []string{"", "gzip;q=0", "identity"} {
		res := get(t, "/ui/vendor/world-atlas/countries-50m.json", "Accept-Encoding", ae)
		if res.Header.Get("Content-Encoding") != "" || res.ContentLength != int64(len(want)) {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, %d bytes", ae, res.Header.Get("Content-Encoding"), res.ContentLength)
		}
	}
	// A revalidation by ETag costs nothing.
	etag := res.Header.Get("ETag")
	if res := get(t, "/ui/vendor/world-atlas/countries-50m.json", "Accept-Encoding", "gzip", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %s, want 304", etag, res.Status)
	}
}

// TestPageIsStrictCSPCompatible checks the page's files for what the
// Content-Security-Policy would block: inline scripts and styles, event
// handler attributes, eval.
func TestPageIsStrictCSPCompatible(t *testing.T) {
	html, err := os.ReadFile("web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`<script(?:\s[^>]*)?>\s*[^<\s]`, `<style`, `\sstyle=`, `\son[a-z]+=`, `javascript:`} {
		if m := regexp.MustCompile(re).Find(html); m != nil {
			t.Errorf("index.html: %q would be blocked by the policy", m)
		}
	}
	js, err := os.ReadFile("web/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`\beval\(`, `new Function\(`, `setAttribute\('style'`, `innerHTML\s*=`} {
		if m := regexp.MustCompile(re).Find(js); m != nil {
			t.Errorf("app.js: %q", m)
		}
	}
}
