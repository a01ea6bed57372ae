package logging

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

// New builds the logger of each format and level, and refuses other
// values naming the flag and the values it takes.
func TestNew(t *testing.T) {
	tests := []struct {
		format, level string
		want          []string // the lines written, each as a substring
		err           string
	}{
		{format: "text", level: "info", want: []string{`level=INFO msg=started site=brussels took=1.5s`, `level=WARN msg="lease lost" site=brussels`}},
		{format: "text", level: "debug", want: []string{`level=DEBUG msg=probe site=brussels`, `level=INFO msg=started`, `level=WARN`}},
		{format: "text", level: "warn", want: []string{`level=WARN msg="lease lost" site=brussels`}},
		{format: "text", level: "ERROR", want: nil},
		{format: "json", level: "info", want: []string{`"level":"INFO","msg":"started","site":"brussels","took":"1.5s"}`, `"level":"WARN","msg":"lease lost","site":"brussels"}`}},
		{format: "json", level: "error", want: nil},
		{format: "xml", level: "info", err: `--log-format "xml": use text or json`},
		{format: "JSON", level: "info", err: `--log-format "JSON": use text or json`},
		{format: "", level: "info", err: `--log-format "": use text or json`},
		{format: "json", level: "loud", err: `--log-level "loud": use debug, info, warn or error`},
		{format: "json", level: "info+2", err: `--log-level "info+2": use debug, info, warn or error`},
		{format: "text", level: "", err: `--log-level "": use debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(&buf, tt.format, tt.level)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("New error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log = log.With("site", "brussels")
			log.Debug("probe")
			log.Info("started", "took", 1500*time.Millisecond)
			log.Warn("lease lost")
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("wrote %d lines, want %d:\n%s", len(lines), len(tt.want), buf.String())
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d: %s\nwant it to contain %s", i, lines[i], w)
				}
			}
			if tt.format == FormatJSON {
				testbed.LogRecords(t, buf.String())
			}
		})
	}
}

func TestForeign(t *testing.T) {
	for key, want := range map[string]string{
		"msg": "etcd_msg", "time": "etcd_time", "level": "etcd_level", "site": "etcd_site", "component": "etcd_component",
		"local-member-id": "local-member-id", "error": "error", "peer": "peer",
	} {
		if got := Foreign("etcd", key); got != want {
			t.Errorf("Foreign(etcd, %s) = %s, want %s", key, got, want)
		}
	}
}
