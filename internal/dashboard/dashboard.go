// Package dashboard holds the web page every agent serves at / : plain
// HTML, CSS and JavaScript embedded in the binary, which reads the agent's
// API from the browser (docs/design/dashboard.md).
package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed web
var files embed.FS

// ContentSecurityPolicy lets the page load only its own files and talk to
// its own agent and, when that one is lost, the other locations' agents
// (https:); no inline script or style, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' https:; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// gzipOver is the size above which a file is sent compressed to a client
// that accepts it: the map's outline is 750 kB, 200 kB gzipped.
const gzipOver = 1 << 10

// file is one embedded file, ready to serve.
type file struct {
	data        []byte
	contentType string
	etag        string
	// vendored files are pinned by version: they may be cached a day.
	vendored bool
	// gz is data gzipped, made at its first request (nil when not worth it).
	gz func() []byte
}

// types names the content types of the page's files, whatever the
// machine's mime tables say (.js as text/javascript, as browsers want for
// modules).
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".json": "application/json",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".txt":  "text/plain; charset=utf-8",
	".md":   "text/plain; charset=utf-8",
}

var load = sync.OnceValue(func() map[string]*file {
	web, err := fs.Sub(files, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	out := map[string]*file{}
	err = fs.WalkDir(web, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(web, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		f := &file{data: data, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, vendored: strings.HasPrefix(p, "vendor/")}
		ext := path.Ext(p)
		f.contentType = types[ext]
		if f.contentType == "" {
			f.contentType = mime.TypeByExtension(ext)
		}
		if f.contentType == "" || path.Base(p) == "LICENSE" {
			f.contentType = "text/plain; charset=utf-8"
		}
		if len(data) > gzipOver && compressible(f.contentType) {
			f.gz = sync.OnceValue(func() []byte {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				_, _ = zw.Write(data)
				_ = zw.Close()
				if buf.Len() >= len(data) {
					return nil
				}
				return buf.Bytes()
			})
		}
		out[p] = f
		return nil
	})
	if err != nil {
		panic(err) // reading the embedded tree cannot fail
	}
	return out
})

func compressible(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "image/svg")
}

// Handler serves the page at / and its files under /ui/, with the
// security headers of a page that holds a login token.
func Handler() http.Handler {
	all := load()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := ""
		switch {
		case r.URL.Path == "/":
			name = "index.html"
		case strings.HasPrefix(r.URL.Path, "/ui/"):
			name = strings.TrimPrefix(path.Clean(r.URL.Path), "/ui/")
		}
		f, ok := all[name]
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", f.contentType)
		h.Set("Vary", "Accept-Encoding")
		// The page's own files change with the agent's version under the
		// same names: the browser revalidates them (a 304 by ETag).
		if f.vendored {
			h.Set("Cache-Control", "public, max-age=86400")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		body, etag := f.data, f.etag
		if f.gz != nil && acceptsGzip(r) {
			if gz := f.gz(); gz != nil {
				body, etag = gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
				h.Set("Content-Encoding", "gzip")
			}
		}
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

// acceptsGzip says whether the request's Accept-Encoding takes gzip
// (and does not refuse it with q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
