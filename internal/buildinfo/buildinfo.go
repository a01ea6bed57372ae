// Package buildinfo holds what the build stamps into the binary: its
// version, shown by `siteflip --version`, reported by every agent and
// exported as a metric.
package buildinfo

import "runtime/debug"

// Version is set at build time:
//
//	go build -ldflags "-X github.com/siteflip/siteflip/internal/buildinfo.Version=1.2.3"
//
// Without it, the module version or VCS revision Go recorded is used.
var Version = ""

// String returns the version, "dev" when nothing better is known.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
