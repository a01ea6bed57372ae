//go:build !linux

package haproxy

import "os/exec"

// dieWithTest does nothing where the kernel cannot kill a child with its
// parent; the tests' cleanups stop HAProxy.
func dieWithTest(cmd *exec.Cmd) {}
