#!/usr/bin/env bash
# ensure-spin.sh makes sure spin (the Promela model checker) and a C compiler
# are on PATH, for `make model` (model/check.sh).
#
# - both present: prints nothing, exits 0.
# - missing, running as root with apt-get: installs Debian's spin package
#   (and gcc when missing).
# - otherwise: says how to install them, on stderr, and exits 1.
set -euo pipefail

missing=()
command -v spin >/dev/null 2>&1 || missing+=(spin)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "ensure-spin: ${missing[*]} not found; installing Debian's package(s)" >&2
	{ apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null; } >&2 || true
	hash -r
fi
for tool in spin gcc; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$tool not found: install it (Debian/Ubuntu: sudo apt-get install spin gcc; macOS: brew install spin) — make model needs it" >&2
		exit 1
	fi
done
exit 0
