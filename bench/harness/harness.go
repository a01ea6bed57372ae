// Package harness is what the benchmarks in bench/ share: a lab to measure
// in, the statistics they report, and the sections of bench/RESULTS.md
// they write.
package harness

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/lab"
)

// Lab is a running lab with a client of its agents.
type Lab struct {
	Options  lab.Options
	Topology *config.Topology
	Client   *api.Client
}

// StartLab starts a lab in dir running the siteflip binary exe.
func StartLab(exe, dir string) (*Lab, error) {
	exe, err := filepath.Abs(exe)
	if err != nil {
		return nil, err
	}
	o := lab.Options{Dir: dir, Exe: exe, Out: io.Discard}
	if err := lab.Up(context.Background(), o); err != nil {
		return nil, err
	}
	t, c, err := lab.Open(dir)
	if err != nil {
		lab.Down(o)
		return nil, err
	}
	return &Lab{Options: o, Topology: t, Client: c}, nil
}

// Stop stops the lab and removes it.
func (l *Lab) Stop() {
	l.Client.Close()
	lab.Down(l.Options)
}

// Figure is a duration as the results show it: "1.234s", or "–" when
// nothing was measured.
func Figure(d time.Duration, n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}

// Stats returns the median and the maximum of ds.
func Stats(ds []time.Duration) (median, max time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// WriteSection replaces the section called name in the results file at
// path (or appends it), leaving the other benchmarks' sections alone.
func WriteSection(path, name, body string) error {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	section := begin + "\n" + strings.TrimRight(body, "\n") + "\n" + end + "\n"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmark results\n\nFigures written by the commands in `bench/`; each section says how it was measured.\n\n"
	}
	if i, j := strings.Index(text, begin), strings.Index(text, end); i >= 0 && j > i {
		text = text[:i] + section + text[j+len(end)+1:]
	} else {
		text += "\n" + section
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// Machine describes where the figures were measured.
func Machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %s, %d cores", host, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU())
}

// Load is the machine's load average over the last minute (0 if unknown).
func Load() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Loads summarises load averages sampled during a measure: "1.8 (max 3.2)".
func Loads(ls []float64) string {
	if len(ls) == 0 {
		return "–"
	}
	s := slices.Clone(ls)
	slices.Sort(s)
	return fmt.Sprintf("%.1f (max %.1f)", s[len(s)/2], s[len(s)-1])
}

// KeepLogs copies the logs of the lab in dir (every *.log below it) to
// dir.failed, so that a bench that failed can be understood after its lab
// is removed; it returns where they went.
func KeepLogs(dir string) string {
	to := strings.TrimRight(dir, "/") + ".failed"
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		dst := filepath.Join(to, rel)
		if os.MkdirAll(filepath.Dir(dst), 0o755) == nil {
			_ = os.WriteFile(dst, b, 0o644)
		}
		return nil
	})
	return to
}
