package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultPathOrder(t *testing.T) {
	tests := []struct {
		name, flag, env string
		local           bool
		want            string
	}{
		{"flag wins over everything", "a.yaml", "b.yaml", true, "a.yaml"},
		{"environment next", "", "b.yaml", true, "b.yaml"},
		{"local file when it exists", "", "", true, LocalPath},
		{"system file otherwise", "", "", false, SystemPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaultPath(tt.flag, tt.env, func(p string) bool {
				if p != LocalPath {
					t.Errorf("asked whether %q exists; only %q is looked for", p, LocalPath)
				}
				return tt.local
			})
			if got != tt.want {
				t.Errorf("defaultPath(%q, %q, local=%v) = %q, want %q", tt.flag, tt.env, tt.local, got, tt.want)
			}
		})
	}
}

// DefaultPath itself looks at the real working directory and environment.
func TestDefaultPathLooksAtWorkingDirectory(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv(EnvPath, "")
	if got := DefaultPath(""); got != SystemPath {
		t.Errorf("empty directory: got %q, want %q", got, SystemPath)
	}
	if err := os.WriteFile(filepath.Join(".", LocalPath), []byte("name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := DefaultPath(""); got != LocalPath {
		t.Errorf("with ./%s: got %q", LocalPath, got)
	}
	t.Setenv(EnvPath, "/elsewhere.yaml")
	if got := DefaultPath(""); got != "/elsewhere.yaml" {
		t.Errorf("with $%s: got %q", EnvPath, got)
	}
}
