// Package mariadb is siteflip's MariaDB driver (docs/design/mariadb.md):
// MariaDB 10.11 servers replicating with GTIDs between two sites, a data
// resource with every capability of its class (internal/resource).
//
//   - Instance: a server on this machine, started from an option file of
//     its own, which is also its boot guard (read_only, skip_slave_start):
//     a server that starts without its agent is read-only
//     and does not replicate.
//   - observer.go: role, GTID positions, replication threads; on the
//     primary, each standby's lag in bytes of binlog and in seconds from
//     a heartbeat row it writes.
//   - actions.go: the recovery primitives, each idempotent and verified:
//     Fence (read_only, client sessions ended, a write refused, the final
//     gtid_binlog_pos), WaitCatchUp (MASTER_GTID_WAIT to that position),
//     Promote (replication stopped and forgotten, writable, proven by a
//     write), Follow.
//   - rejoin.go: an old primary follows the new one; the transactions
//     only it holds are saved aside with mariadb-binlog, reported, and the
//     server is recloned with mariadb-backup.
//   - process.go: the hard fence (the lost serve lease, the watchdog):
//     SIGSTOP then SIGKILL of a server that holds the writable mark.
//   - sync.go: semi-synchronous replication (AFTER_SYNC) without its
//     silent fallback: the agent's quorum-recorded degrade releases it.
//   - check.go: what the driver needs of a server, and the statement that
//     fixes each problem (siteflip check --servers, the agent at start).
//   - resource.go: the row of the driver table.
package mariadb
