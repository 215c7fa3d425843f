#!/usr/bin/env bash
# ensure-redis.sh makes sure a redis-server >= 6.2 is on PATH, because the
# tests and examples start their own redis-server processes on free ports.
#
# - redis-server present and new enough: prints nothing, exits 0.
# - missing, running as root with apt-get: installs Debian's redis-server
#   package. The package's own service is NOT started (no systemd unit, no
#   init script): a policy-rc.d that refuses every start is in place during
#   the install, so a Redis already listening on 127.0.0.1:6379 is left alone.
# - otherwise: says how to install it, on stderr, and exits 1.
set -euo pipefail

min_major=6
min_minor=2

missing_msg="redis-server not found: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) — the tests start their own redis-server processes"

install_with_apt() {
	# policy-rc.d exiting 101 means "action forbidden": invoke-rc.d and
	# deb-systemd-invoke then skip starting the service that the package's
	# postinst would otherwise start on the default port 6379 (where it
	# would fail to bind, or compete with the Redis already running there).
	# Any policy-rc.d already present is put back afterwards.
	local policy=/usr/sbin/policy-rc.d backup=""
	if [[ -e $policy ]]; then
		backup=$(mktemp /usr/sbin/.policy-rc.d.ensure-redis.XXXXXX)
		cp -p "$policy" "$backup"
	fi
	# shellcheck disable=SC2064 # expand now: restore whatever was there
	trap "restore_policy '$policy' '$backup'" EXIT
	printf '#!/bin/sh\n# ensure-redis.sh: install only, start no service\nexit 101\n' >"$policy"
	chmod 755 "$policy"

	echo "ensure-redis: redis-server not found; installing Debian's redis-server package (its service is not started)" >&2
	local rc=0
	{ apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			redis-server </dev/null; } >&2 || rc=$?

	restore_policy "$policy" "$backup"
	trap - EXIT
	return "$rc"
}

restore_policy() {
	local policy=$1 backup=$2
	if [[ -n $backup ]]; then
		mv -f "$backup" "$policy"
	else
		rm -f "$policy"
	fi
}

if ! command -v redis-server >/dev/null 2>&1; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		install_with_apt || true
		hash -r
	fi
	if ! command -v redis-server >/dev/null 2>&1; then
		echo "$missing_msg" >&2
		exit 1
	fi
fi

# "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 ..."
version_line=$(redis-server --version 2>&1 || true)
version=$(sed -n 's/.* v=\([0-9][0-9]*\.[0-9][0-9]*\(\.[0-9][0-9]*\)\{0,1\}\).*/\1/p' <<<"$version_line" | head -n1)
if [[ -z $version ]]; then
	echo "ensure-redis: cannot read the version of $(command -v redis-server) from: $version_line" >&2
	echo "distlock needs Redis >= ${min_major}.${min_minor}" >&2
	exit 1
fi
IFS=. read -r major minor _ <<<"$version"
if ((major < min_major || (major == min_major && minor < min_minor))); then
	echo "redis-server $version at $(command -v redis-server) is too old: distlock needs Redis >= ${min_major}.${min_minor} (Debian 12/Ubuntu 22.04 or later ship one; macOS: brew upgrade redis)" >&2
	exit 1
fi
exit 0
