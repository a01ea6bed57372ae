// Package haproxy owns siteflip's HAProxy driver: moving a protection
// group's clients to the active site by switching the servers of an HAProxy
// backend, one server per site, through HAProxy's runtime API.
//
// It has three parts:
//
//   - Settings: the per-site block of a haproxy resource in the
//     configuration — the runtime API socket, the backend, the site's server
//     in it and the server-state file — with defaults and checks.
//   - The runtime API calls, one per (socket, backend, server): State reads
//     the server's operational and administrative state; Enable makes the
//     server ready and Disable puts it in maintenance, and both read the
//     state back before they report success, because a network step checks
//     its effect rather than trusting an answer.
//   - SaveState, which writes HAProxy's server state to the state file
//     atomically, so that a reload of HAProxy keeps what the runtime API
//     changed.
//
// HAProxy forgets runtime changes on reload unless its configuration reads
// them back from that file, for example:
//
//	global
//	    stats socket /run/haproxy/admin.sock mode 660 level admin
//	    server-state-file /var/lib/haproxy/server-state
//	defaults
//	    load-server-state-from-file global
//
// A standby site's server may be marked `disabled` in haproxy.cfg: Enable
// makes it ready, and the state file keeps it ready across reloads. Enabling
// the new site's server before disabling the old one keeps the backend from
// ever being empty; the other order makes HAProxy answer 503 between the
// two calls.
//
// Several sites may share one HAProxy (both servers in one backend, one
// socket) or each site may have its own; every call names its own socket,
// backend and server. Nothing is cached between calls: each opens a
// connection, sends one command and reads the answer until HAProxy closes.
//
// The runtime API runs with the privileges of whoever can open the socket,
// so the socket should be reachable by siteflip's agent only (a unix socket
// with mode 660 and a group, or a TCP address on a management network).
package haproxy
