#!/usr/bin/env bash
# Profiles the cases where issue 6's goals are missed or tight, one at a
# time, and writes the top of each CPU profile as text into
# results/profiles/. Run from benchmarks/: ./profile.sh
# Each run starts its own redis-server masters (TestMain) and stops them.
set -euo pipefail
cd "$(dirname "$0")"
out=results/profiles
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

profile() { # name, -bench pattern, -benchtime
	local name=$1 pattern=$2 benchtime=$3
	go test -count=1 -run '^$' -bench "$pattern" -benchtime "$benchtime" \
		-cpuprofile "$tmp/$name.cpu" -o "$tmp/bench.test" . >"$tmp/$name.bench"
	{
		echo "# $name: go test -run '^\$' -bench '$pattern' -benchtime $benchtime -cpuprofile cpu.out"
		echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
		grep '^Benchmark' "$tmp/$name.bench"
		echo
		echo "## go tool pprof -top (flat)"
		go tool pprof -top -nodecount 25 "$tmp/bench.test" "$tmp/$name.cpu" 2>/dev/null | sed -n '4,$p'
		echo
		echo "## go tool pprof -top -cum, distlock's own functions"
		go tool pprof -top -cum -nodecount 400 "$tmp/bench.test" "$tmp/$name.cpu" 2>/dev/null |
			grep -E 'flat%|github.com/distlock/distlock\.|runtime.newproc$|runtime.mallocgc$|Syscall6$' | head -30
	} >"$out/$name.txt"
	echo "wrote $out/$name.txt"
}

profile throughput-floor-3 'Cycle/floor-3/goroutines=64$' 5s
profile throughput-distlock-3 'Cycle/distlock-3/goroutines=64$' 5s
profile latency-floor-3 'Cycle/floor-3/goroutines=1$' 3s
profile latency-distlock-3 'Cycle/distlock-3/goroutines=1$' 3s
profile handoff-distlock-3-clients-1 'Handoff/distlock-3/workers=8/clients=1$' 4x
profile handoff-distlock-3-clients-8 'Handoff/distlock-3/workers=8/clients=8$' 4x
profile handoff-rueidislock-1 'Handoff/rueidislock-1/workers=8/clients=1$' 4x
profile hold-distlock-3-100k 'Hold/distlock-3/leases=100000$' 1x
