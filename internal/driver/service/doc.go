// Package service owns the service resource (class service): a program
// that runs at the active site of its group only, an application server,
// a virtual appliance, a VM (virsh), a container (podman, docker) or any
// process. At the active site it is started and its health proven
// (Promote, Unfence); everywhere else it is stopped and its stop verified
// (Fence, Rejoin), and stopped at once when the site's serve lease runs
// out (Yield, unless stop_on_lease_loss is false).
//
// A service is run either by a systemd unit (unit: systemctl start, stop
// and is-active --quiet) or by three commands the operator writes: start,
// stop and status (exit 0: running; any other exit: stopped; 126 and 127,
// a program that could not be found or run, and a timeout mean the state
// is unknown). The commands run through internal/command, without a shell
// unless shell: true.
//
// Every command must be idempotent: after a controller loss a step runs
// again from its start, so start may be called on a running service and
// stop on a stopped one, and each must then succeed doing nothing. The
// steps themselves skip start when status already says running, and stop
// when it already says stopped. start must return once the program is
// started, not run it in the foreground: a launcher that returns at once
// (systemctl start, podman start, virsh start) or a program that detaches
// with its output sent elsewhere (setsid -f prog >>log 2>&1). A start
// that runs until start_timeout is killed, with its process group.
//
// The health probe (an HTTP request, a TCP connection or a command) is
// what promotion waits for: a service without one is promoted as soon as
// its status says running, which Lint warns about. HTTP and TCP probes are
// the check resource's own (check.Probe).
package service
