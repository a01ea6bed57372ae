package check

import (
	"testing"
)

func TestExpand(t *testing.T) {
	targets := map[string]string{
		"db":   "10.1.0.20:5432",
		"web":  "[2001:db8::80]:8080",
		"name": "127.0.2.1:5353",
	}
	for _, tc := range []struct {
		text    string
		bracket bool
		want    string
		err     string
	}{
		{text: "no placeholder", want: "no placeholder"},
		{text: "{db}", want: "10.1.0.20:5432"},
		{text: "{db.host}:{db.port}", bracket: true, want: "10.1.0.20:5432"},
		{text: "postgres://{db.host}:6432/x", bracket: true, want: "postgres://10.1.0.20:6432/x"},
		{text: "http://{web}/health", bracket: true, want: "http://[2001:db8::80]:8080/health"},
		{text: "http://{web.host}:{web.port}/", bracket: true, want: "http://[2001:db8::80]:8080/"},
		{text: "{web.host}", want: "2001:db8::80"},
		{text: "{web}", want: "[2001:db8::80]:8080"}, // host:port brackets a v6 host always
		{text: "{db}{name.port}", want: "10.1.0.20:54325353"},
		{text: "{cache}", err: "no address for resource cache here: it has none at this site; write the address in full instead of {cache}"},
		{text: "http://{db/", err: "has a { without its }: write a placeholder as {db}, {db.host} or {db.port}, db a resource of the group (a literal brace is %7B in a URL)"},
		{text: "{{db}}", err: "has a { without its }: write a placeholder as {db}, {db.host} or {db.port}, db a resource of the group (a literal brace is %7B in a URL)"},
		{text: "db}", err: "has a } without its {: write a placeholder as {db}, {db.host} or {db.port}, db a resource of the group (a literal brace is %7D in a URL)"},
		{text: "{}", err: "has placeholder {}: write a placeholder as {db}, {db.host} or {db.port}, db a resource of the group"},
		{text: "{db.user}", err: "has placeholder {db.user}: write a placeholder as {db}, {db.host} or {db.port}, db a resource of the group"},
		{text: "{DB}", err: "has placeholder {DB}: write a placeholder as {db}, {db.host} or {db.port}, db a resource of the group"},
	} {
		got, err := expand(tc.text, fromTargets(targets), tc.bracket)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("expand(%q): %q, %v; want error %q", tc.text, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("expand(%q) = %q, %v; want %q", tc.text, got, err, tc.want)
		}
	}
}
