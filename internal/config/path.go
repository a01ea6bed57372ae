package config

import (
	"errors"
	"io/fs"
	"os"
)

// Where the topology file is looked for when no --config is given.
const (
	// EnvPath names the environment variable that gives the file.
	EnvPath = "SITEFLIP_CONFIG"
	// LocalPath is read when it exists in the working directory.
	LocalPath = "siteflip.yaml"
	// SystemPath is the installed default, where the Debian package puts
	// the topology (deploy/debian).
	SystemPath = "/etc/siteflip/siteflip.yaml"
)

// DefaultPath returns the topology file to read: flag (--config) when
// given, else $SITEFLIP_CONFIG when set, else ./siteflip.yaml when it
// exists, else /etc/siteflip/siteflip.yaml. A ./siteflip.yaml that exists
// but cannot be examined (permission denied) is still chosen, so that the
// error names it rather than the system file.
func DefaultPath(flag string) string {
	return defaultPath(flag, os.Getenv(EnvPath), func(p string) bool {
		_, err := os.Stat(p)
		return !errors.Is(err, fs.ErrNotExist)
	})
}

func defaultPath(flag, env string, exists func(string) bool) string {
	switch {
	case flag != "":
		return flag
	case env != "":
		return env
	case exists(LocalPath):
		return LocalPath
	default:
		return SystemPath
	}
}
