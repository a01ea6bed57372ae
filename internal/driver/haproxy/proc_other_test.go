//go:build !linux

package haproxy

import "syscall"

// dieWithTest returns nothing where the kernel cannot kill a child with
// its parent; the tests' cleanups stop HAProxy.
func dieWithTest() *syscall.SysProcAttr { return nil }
