// Package dashboard holds the web page every agent serves at / : plain
// HTML, CSS and JavaScript embedded in the binary, which reads the agent's
// API from the browser (docs/design/dashboard.md).
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed web
var files embed.FS

// Handler serves the page at / and its files under /ui/.
func Handler() http.Handler {
	web, err := fs.Sub(files, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	static := http.StripPrefix("/ui/", http.FileServerFS(web))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, web, "index.html")
			return
		}
		static.ServeHTTP(w, r)
	})
}
