#!/usr/bin/env bash
# Smoke test of the Debian package, as root on a Debian machine (CI runs it
# after `make test`): builds the .deb (or takes $SITEFLIP_DEB), installs it,
# checks the binary's version, the user and the unit, then runs three
# agents — sites brussels and antwerp and the witness frankfurt, on
# 127.0.77.1-3 — each from the packaged unit's command line as the user
# siteflip, with the capabilities the unit grants and certificates made by
# `siteflip cert`; it waits until `siteflip status -o json` shows all
# three up, stops them and purges the package.
#
# systemd need not run: the agents are started as the unit would start
# them (its ExecStart, with this test's paths for the config and state).
# It refuses to run where siteflip is already installed, and removes the
# user siteflip at the end only if it made it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'deb-smoke: %s\n' "$*" >&2; }
fail() {
	say "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (it installs and purges the package)"
if dpkg-query -W -f='${Status}' siteflip 2>/dev/null | grep -q 'install ok'; then
	fail "siteflip is already installed here; purge it first (dpkg --purge siteflip) or run this elsewhere"
fi
user_existed=false
getent passwd siteflip >/dev/null && user_existed=true

locations=(brussels antwerp frankfurt)
declare -A addr=([brussels]=127.0.77.1 [antwerp]=127.0.77.2 [frankfurt]=127.0.77.3)
# Ports no test uses; each location has its own address.
agent_port=27400 etcd_client=27479 etcd_peer=27480 dns_port=27453

work=$(mktemp -d /tmp/siteflip-smoke.XXXXXX)
chmod 0755 "$work"
pids=()
installed=false

cleanup() {
	local rc=$?
	set +e
	# The agents' children (their watchdogs) are released by a clean stop;
	# those still there after it are killed by their ids.
	local children=()
	for pid in "${pids[@]}"; do
		children+=($(pgrep -P "$pid" 2>/dev/null))
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}" "${children[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
	done
	if [ $rc != 0 ]; then
		for l in "${locations[@]}"; do
			[ -f "$work/$l.log" ] && { say "--- $l's agent log (last 30 lines)"; tail -n 30 "$work/$l.log" >&2; }
		done
	fi
	if $installed; then
		dpkg --purge siteflip >/dev/null || say "dpkg --purge siteflip failed"
		[ -e /var/lib/siteflip ] && { say "FAIL: purge left /var/lib/siteflip"; rc=1; }
	fi
	if ! $user_existed && getent passwd siteflip >/dev/null; then
		deluser --system --quiet siteflip >/dev/null 2>&1 || userdel siteflip
		getent group siteflip >/dev/null && { delgroup --system --quiet siteflip >/dev/null 2>&1 || groupdel siteflip; }
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

# 1. The package.
if [ -n "${SITEFLIP_DEB:-}" ]; then
	deb=$SITEFLIP_DEB
else
	say "building the package (scripts/deb.sh)"
	deb=$(scripts/deb.sh | tail -n 1)
fi
[ -f "$deb" ] || fail "no package at $deb"
version=$(dpkg-deb -f "$deb" Version)
say "installing $deb"
installed=true
if ! dpkg -i "$deb" >"$work/dpkg.log" 2>&1; then
	say "dpkg -i could not configure it; installing its dependencies (apt-get -f install)"
	apt-get install -f -y -q >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "apt-get -f install"; }
fi

# 2. What it installed.
# `siteflip --version` comes with the cobra command line; before it,
# the verb `siteflip version` says the same.
got=$(siteflip --version 2>&1) || got=$(siteflip version 2>&1) || fail "siteflip --version and siteflip version: $got"
case $got in
*"$version"*) say "siteflip --version: $got" ;;
*) fail "siteflip --version says \"$got\", the package is $version" ;;
esac
getent passwd siteflip >/dev/null || fail "the package made no user siteflip"
home=$(getent passwd siteflip | cut -d: -f6)
[ "$home" = /var/lib/siteflip ] || fail "siteflip's home is $home, want /var/lib/siteflip"
perm=$(stat -c '%U:%G %a' /var/lib/siteflip)
[ "$perm" = "siteflip:siteflip 750" ] || fail "/var/lib/siteflip is $perm, want siteflip:siteflip 750"
unit=/lib/systemd/system/siteflip-agent.service
[ -f "$unit" ] || fail "no unit at $unit"
[ -f /etc/default/siteflip ] || fail "no /etc/default/siteflip"
[ -f /etc/siteflip/siteflip.yaml.example ] || fail "no example topology"
[ ! -e /etc/siteflip/siteflip.yaml ] || fail "the package installed a live /etc/siteflip/siteflip.yaml"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify: $out"
	if grep -F siteflip-agent.service <<<"$out" >&2; then fail "systemd-analyze verify complains about the unit"; fi
	say "systemd-analyze verify: clean"
else
	say "SKIPPED: systemd-analyze is not installed, the unit is not verified"
fi

# 3. Certificates from the binary: the CA stays in $work/ca; each
# location gets ca.crt and only its own certificate and key.
ca=$work/ca
mkdir -p "$ca"
siteflip cert init --dir "$ca" --name "smoke CA" >/dev/null
# On one machine's loopback, connections between the locations come from
# 127.0.0.1 whatever address they are made to, and etcd checks a peer's
# certificate against the address it comes from: so each location's
# certificate also names 127.0.0.1, as the lab's do. On real machines a
# location's own address is all it needs.
for l in "${locations[@]}"; do
	siteflip cert site "$l" --address "${addr[$l]}" --address 127.0.0.1 --dir "$ca" >/dev/null
done
siteflip cert operator smoke --role admin --dir "$ca" >/dev/null

topology() {
	local l a role
	cat <<EOF
name: smoke
coordination: {serve_lease: 2s, fence_margin: 1s, lease_ttl: 5s}
tls: {ca_file: ca.crt}
access:
  - {identity: smoke, role: admin}
sites:
EOF
	for l in "${locations[@]}"; do
		a=${addr[$l]}
		role=site
		[ "$l" = frankfurt ] && role=witness
		cat <<EOF
  - name: $l
    role: $role
    agent: {address: "$a:$agent_port"}
    etcd: {peer_url: "https://$a:$etcd_peer", client_url: "https://$a:$etcd_client"}
    tls: {cert_file: $l.crt, key_file: $l.key}
EOF
	done
	# A group without data: a name each site's agent answers.
	cat <<EOF
groups:
  - name: svc
    preferred_site: brussels
    resources:
      - name: name
        type: dns
        sites:
          brussels: {name: svc.smoke.test., address: ${addr[brussels]}, ttl: 5s, serve: "${addr[brussels]}:$dns_port"}
          antwerp: {name: svc.smoke.test., address: ${addr[antwerp]}, ttl: 5s, serve: "${addr[antwerp]}:$dns_port"}
EOF
}

for l in "${locations[@]}"; do
	d=$work/$l
	mkdir -p "$d/etc" "$d/state"
	topology >"$d/etc/siteflip.yaml"
	cp "$ca/ca.crt" "$ca/$l.crt" "$ca/$l.key" "$d/etc/"
	# As docs/deploy.md says: the topology readable by the group, the key
	# the agent's own (0600).
	chown -R root:siteflip "$d/etc"
	chmod 0750 "$d/etc"
	chmod 0640 "$d/etc/siteflip.yaml"
	chmod 0644 "$d/etc/"*.crt
	chown siteflip:siteflip "$d/etc/$l.key"
	chmod 0600 "$d/etc/$l.key"
	chown siteflip:siteflip "$d/state"
	chmod 0750 "$d/state"
done
mkdir -p "$work/operator"
topology >"$work/operator/siteflip.yaml"
cp "$ca/ca.crt" "$ca/smoke.crt" "$ca/smoke.key" "$work/operator/"
op=(--config "$work/operator/siteflip.yaml")
export SITEFLIP_CERT=$work/operator/smoke.crt SITEFLIP_KEY=$work/operator/smoke.key
siteflip check "${op[@]}" >"$work/check.txt" 2>&1 || { cat "$work/check.txt" >&2; fail "siteflip check of the smoke topology"; }

# 4. The agents, from the unit's command line, as the unit runs them:
# user siteflip, CAP_NET_BIND_SERVICE alone (ambient and bounding), no new
# privileges, a session of its own, and RLIMIT_NICE for nice -10 when this
# machine lets root set it (LimitNICE=-10).
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$exec_start" ] || fail "no ExecStart in $unit"
nice_limit=(prlimit --nice=30 --)
if ! prlimit --nice=30 -- true 2>/dev/null; then
	say "note: root cannot set RLIMIT_NICE here (no CAP_SYS_RESOURCE); the agents run without LimitNICE and log that they keep the normal priority"
	nice_limit=()
fi
for l in "${locations[@]}"; do
	d=$work/$l
	cmd=${exec_start//\/etc\/siteflip\/siteflip.yaml/$d/etc/siteflip.yaml}
	cmd=${cmd//'${SITEFLIP_SITE}'/$l}
	cmd=${cmd//\/var\/lib\/siteflip/$d/state}
	cmd=${cmd//'$SITEFLIP_AGENT_OPTS'/}
	# shellcheck disable=SC2086 # the unit's words, split as systemd splits them (no quotes in it)
	"${nice_limit[@]}" setsid setpriv --reuid=siteflip --regid=siteflip --init-groups \
		--inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
		--bounding-set=-all,+net_bind_service --no-new-privs -- \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/var/lib/siteflip $cmd \
		>"$work/$l.log" 2>&1 </dev/null &
	pids+=($!)
	say "started $l's agent (pid $!): $cmd"
done

# 5. Up: every location reporting and seen up, by the CLI as an operator.
up() {
	local json
	json=$(siteflip status -o json "${op[@]}" 2>/dev/null) || return 1
	if command -v python3 >/dev/null; then
		python3 -c '
import json, sys
s = json.load(sys.stdin)
sites = {x["name"]: x for x in s.get("sites", [])}
want = sys.argv[1:]
sys.exit(0 if all(n in sites and sites[n].get("up") and sites[n].get("reporting") for n in want) else 1)
' "${locations[@]}" <<<"$json"
	else
		[ "$(tr -d ' \n' <<<"$json" | grep -o '"up":true' | wc -l)" -ge 3 ] &&
			[ "$(tr -d ' \n' <<<"$json" | grep -o '"reporting":true' | wc -l)" -ge 3 ]
	fi
}
started=$SECONDS
deadline=$((SECONDS + ${SITEFLIP_SMOKE_TIMEOUT:-120}))
until up; do
	for i in "${!pids[@]}"; do
		kill -0 "${pids[$i]}" 2>/dev/null || fail "${locations[$i]}'s agent exited"
	done
	[ $SECONDS -lt $deadline ] || {
		siteflip status "${op[@]}" >&2 || true
		fail "the three locations were not all up within ${SITEFLIP_SMOKE_TIMEOUT:-120}s"
	}
	sleep 1
done
say "all three locations up $((SECONDS - started))s after their start:"
siteflip status "${op[@]}" >&2 || true
for l in "${locations[@]}"; do
	owner=$(stat -c %U "$work/$l/state/etcd")
	[ "$owner" = siteflip ] || fail "$l's etcd data belongs to $owner, want siteflip"
done
# etcd's warnings at every start are gone (internal/coord/member.go).
if grep -H -e "not recommended for production" -e "simple token is not" "$work"/*.log >&2; then
	fail "an embedded etcd member still warns at start"
fi
say "PASS"
