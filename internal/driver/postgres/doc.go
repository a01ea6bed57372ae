// Package postgres owns siteflip's PostgreSQL driver.
//
// It has four parts:
//
//   - Settings: the per-site block of a postgres resource in the
//     configuration, with its defaults and checks. The caller decodes the
//     YAML strictly and resolves relative paths; this package only says what
//     the fields mean and whether their values make sense.
//   - Observer: a read-only view of one instance — whether it is up, its
//     role (primary or standby), timeline, WAL positions and replication
//     state — taken with one short query batch over a reused connection.
//   - Instance: managing a local instance — initdb for a new primary,
//     pg_basebackup for a standby, and the server command line.
//   - The recovery actions a plan runs on the agent of the instance's
//     site, each idempotent: Start, StartPrimary and Stop (a server runs
//     in a session of its own and outlives the agent), Fence, WaitCatchUp,
//     Promote and Rejoin (pg_rewind, or a fresh base backup when it cannot
//     work, keeping the WAL that only the old primary had).
//   - The boot guard: every running primary's data dir holds
//     standby.signal, so that a primary that starts again without the
//     agent comes up read-only (EnsureBootGuard, StartPrimary,
//     ClusterState).
//   - Drill copies (drill.go): a copy of the standby, taken with
//     pg_basebackup from the standby itself into drill_dir, started as a
//     primary of its own in a drill's bubble and torn down again; the
//     observer, boot guard and fencing never look there.
//   - Instances the agent cannot reach on its own machine (IsLocal): they
//     are fenced by a configured command whose effect is verified
//     (RunFenceCommand).
//
// No shell ever runs: servers and tools are executed directly. pg_ctl is
// used only to stop a server; pg_ctl start, and pg_rewind's own crash
// recovery, would hand the data dir to /bin/sh. Settings.Check refuses
// paths that a shell would act on all the same, because initdb does.
//
// Servers and PostgreSQL tools run as the postgres OS user when the calling
// process is root. Per-site server settings (port, listen_addresses,
// cluster_name, unix_socket_directories) are passed on the server's command
// line rather than written to postgresql.conf, because pg_basebackup copies
// the configuration files of the primary into every standby.
package postgres
