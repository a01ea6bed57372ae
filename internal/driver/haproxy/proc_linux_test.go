package haproxy

import "syscall"

// dieWithTest makes the kernel kill a process started with it when the
// test process dies, so that a test killed before its cleanup leaves no
// HAProxy running.
func dieWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
