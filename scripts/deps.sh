#!/usr/bin/env bash
# Installs what siteflip's lab and tests need on Debian: PostgreSQL server
# binaries; and, as root, ip and nft for the network namespaces of the
# fault-injection tests, the real network peers the network resources are
# tested against: FRR, BIND and HAProxy, MariaDB, Prometheus for promtool,
# and Chromium with a font for the dashboard's browser tests (from Debian's
# packages, only when missing).
# Go modules come through the module proxy when go builds.
set -euo pipefail

missing=()
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || {
	echo "deps: Go is missing: install Go 1.26 or newer (https://go.dev/doc/install) and put it on PATH" >&2
	exit 1
}
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
	missing+=(postgresql-15)
fi
# Network namespaces need root: for anyone else the tests that use them skip,
# so ip and nft are wanted only from root. They live in sbin, which PATH may lack.
if [ "$(id -u)" -eq 0 ]; then
	has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
	has ip || missing+=(iproute2)
	has nft || missing+=(nftables)
	[ -x /usr/lib/frr/bgpd ] || missing+=(frr)
	has named || missing+=(bind9)
	has haproxy || missing+=(haproxy)
	# The MariaDB driver's tests start servers as the mysql user, which
	# only root can.
	has mariadbd || missing+=(mariadb-server mariadb-client mariadb-backup)
	# promtool checks the agent's /metrics, the alert rules and the
	# dashboard's queries (deploy/); without it those tests skip.
	has promtool || missing+=(prometheus)
	# The dashboard's tests drive the page in a headless Chromium
	# (internal/testbed/browser); without it they skip. A font of its own
	# keeps the screenshots the same on every machine.
	has chromium || missing+=(chromium)
	# certutil puts a test CA into the browser's certificate store.
	has certutil || missing+=(libnss3-tools)
	[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
fi
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: install them with: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The tests start their own FRR, BIND and HAProxy: keep the packages from
# starting their system services (a named on port 53, zebra in the root
# namespace) while they install.
policy=/usr/sbin/policy-rc.d
had_policy=0
[ -e "$policy" ] && had_policy=1
if [ "$had_policy" -eq 0 ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The prometheus package enables its server at boot: only its promtool is
# wanted, and no server on port 9090.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
	systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
