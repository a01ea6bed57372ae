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
//     site, each idempotent: Start and Stop (through pg_ctl, so that a
//     server outlives the agent), Fence, WaitCatchUp, Promote and Rejoin
//     (pg_rewind, or a fresh base backup when it cannot work, keeping the
//     WAL that only the old primary had).
//
// Servers and PostgreSQL tools run as the postgres OS user when the calling
// process is root. Per-site server settings (port, listen_addresses,
// cluster_name, unix_socket_directories) are passed on the server's command
// line rather than written to postgresql.conf, because pg_basebackup copies
// the configuration files of the primary into every standby.
package postgres
