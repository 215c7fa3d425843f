#!/usr/bin/env bash
# check.sh: model-check distlock.pml with spin.
#
# Runs every scenario of the fixed protocol (each must pass: no assertion
# violated in the exhaustive search of its bounded state space), then every
# mutation (each must be caught: spin finds a counterexample), then the known
# findings (counterexamples in the fixed protocol, reported as such; they
# fail `make model` only if they stop failing, so that a fix is noticed).
# Prints a summary table; exits non-zero if any row is not as expected.
#
# Usage: model/check.sh [-j JOBS] [NAME...]   (NAME: rows to run; default all)
#   KEEP=1 keeps the work directories (trails, pan output) under $WORK.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model=$here/distlock.pml
jobs=2
if [[ ${1:-} == -j ]]; then jobs=$2; shift 2; fi

for tool in spin gcc; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "check.sh: $tool not found (Debian: apt-get install spin gcc; scripts/ensure-spin.sh does it as root)" >&2
		exit 2
	fi
done

# name | expect (pass, fail) | properties a failure must violate (one of them; separated by ",") | gcc -O level | spin -D flags
# (gcc -O2 takes ~50 s on pan.c, -O0 ~3 s: -O2 only where it saves more
# than that in the search, today the fence row: 103 s at -O2, 200 s at -O0)
# (longest first, so that the parallel jobs end together)
rows=(
	"fence|pass|-|-O2|-DN=3 -DLIMBO=0 -DCLOCKF=1 -DMAXT=0 -DLOOPS=2 -DATT=1"
	"extend_short_then_long|pass|-|-O0|-DN=3 -DIDLE1 -DLIMBO=1 -DRENEWS=1 -DEXTEND -DEXTEND_LONGER -DTTL=3 -DSHORT=2 -DLONG=4 -DMAXT=2"
	"handoff|pass|-|-O0|-DN=2 -DG=3 -DHANDOFF -DWAITER_ONLY_HANDED -DLIMBO=0 -DCLOCKF=2 -DMAXT=0 -DATT=1"
	"fence_limbo|pass|-|-O0|-DN=3 -DG=2 -DLIMBO=1 -DCLOCKF=0 -DMAXT=0 -DATT=1 -DCTR0=2"
	"acquire|pass|-|-O0|-DN=2 -DLIMBO=1 -DATT=2 -DATT1=1 -DTTL=2 -DMAXT=1"
	"release|pass|-|-O0|-DN=3 -DG=2 -DHANDOFF -DLIMBO=1 -DCLOCKF=1 -DMAXT=1 -DATT=1 -DCHKQ"
	"extend|pass|-|-O0|-DN=3 -DIDLE1 -DLIMBO=0 -DRENEWS=1 -DEXTEND -DTTL=4 -DSHORT=2 -DMAXT=4"
	"MUT_NO_UNKNOWN_TTL|fail|P3_keys_on_majority|-O0|-DN=3 -DIDLE1 -DLIMBO=1 -DRENEWS=1 -DEXTEND -DEXTEND_LONGER -DTTL=3 -DSHORT=2 -DLONG=4 -DMAXT=2 -DMUT_NO_UNKNOWN_TTL"
	"MUT_HANDOFF_NO_ROUNDTRIP|fail|P2_token_order,P2_handout_order|-O0|-DN=2 -DG=3 -DHANDOFF -DWAITER_ONLY_HANDED -DLIMBO=0 -DCLOCKF=2 -DMAXT=0 -DATT=1 -DMUT_HANDOFF_NO_ROUNDTRIP"
	"MUT_RELEASE_NO_RAISE|fail|P2_handout_order|-O0|-DN=3 -DG=2 -DLIMBO=1 -DCLOCKF=0 -DMAXT=0 -DATT=1 -DCTR0=2 -DMUT_RELEASE_NO_RAISE"
	"pause|pass|-|-O0|-DN=2 -DLIMBO=0 -DPAUSES=1 -DCLOCKF=1 -DWRITES=1 -DTTL=2 -DMAXT=2 -DATT=1"
	"MUT_REUSE_VALUE|fail|P3_keys_on_majority|-O0|-DN=2 -DLIMBO=1 -DATT=2 -DATT1=1 -DTTL=2 -DMAXT=1 -DMUT_REUSE_VALUE"
	"handoff_late_renewal|pass|-|-O0|-DN=2 -DG=2 -DHANDOFF -DWAITER_ONLY_HANDED -DLIMBO=1 -DEXTEND -DEXTEND_LONGER -DTTL=3 -DSHORT=2 -DLONG=4 -DMAXT=2 -DATT=1"
	"handoff_successor_renews|pass|-|-O0|-DN=2 -DG=2 -DHANDOFF -DWAITER_ONLY_HANDED -DLIMBO=0 -DEXTEND -DEXTEND_LONGER -DTTL=2 -DSHORT=2 -DLONG=4 -DRENEWS=1 -DRENEW_HANDED -DMAXT=2 -DATT=1"
	"MUT_SUCCESSOR_OLD_TTL|fail|P3_keys_on_majority|-O0|-DN=2 -DG=2 -DHANDOFF -DWAITER_ONLY_HANDED -DLIMBO=0 -DEXTEND -DEXTEND_LONGER -DTTL=2 -DSHORT=2 -DLONG=4 -DRENEWS=1 -DRENEW_HANDED -DMAXT=2 -DATT=1 -DMUT_SUCCESSOR_OLD_TTL"
	"MUT_FASTPATH_ONE_MASTER|fail|P2_token_order,P2_handout_order|-O0|-DN=3 -DLIMBO=0 -DCLOCKF=1 -DMAXT=0 -DLOOPS=2 -DATT=1 -DMUT_FASTPATH_ONE_MASTER"
	"MUT_HANDOFF_SAME_VALUE|fail|P3_keys_on_majority|-O0|-DN=2 -DG=2 -DHANDOFF -DWAITER_ONLY_HANDED -DLIMBO=1 -DEXTEND -DEXTEND_LONGER -DTTL=3 -DSHORT=2 -DLONG=4 -DMAXT=2 -DATT=1 -DMUT_HANDOFF_SAME_VALUE"
	"MUT_OLD_EXTEND|fail|P3_keys_on_majority|-O0|-DN=3 -DIDLE1 -DLIMBO=0 -DRENEWS=1 -DEXTEND -DTTL=4 -DSHORT=2 -DMAXT=4 -DMUT_OLD_EXTEND"
)

want=("$@")
selected() {
	[[ ${#want[@]} -eq 0 ]] && return 0
	local w
	for w in "${want[@]}"; do [[ $w == "$1" ]] && return 0; done
	return 1
}

WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/distlock-model.XXXXXX")}
mkdir -p "$WORK"
[[ ${KEEP:-} == 1 ]] || trap 'rm -rf "$WORK"' EXIT

# run NAME OPT FLAGS: writes $WORK/NAME/result as "verdict|violated|states|seconds"
run() {
	local name=$1 opt=$2 flags=$3 dir=$WORK/$1
	mkdir -p "$dir"
	(
		cd "$dir" || exit 1
		cp "$model" distlock.pml # spin -t reads the trail beside the model
		# shellcheck disable=SC2086 # flags are words
		if ! spin -a $flags distlock.pml >spin.out 2>&1; then
			echo "error|spin -a failed: $(head -c 300 spin.out | tr '\n' ' ')|-|-" >result
			exit 0
		fi
		if ! gcc "$opt" -w -DSAFETY -DNOFAIR -DCOLLAPSE -o pan pan.c >gcc.out 2>&1; then
			echo "error|gcc failed: $(head -c 300 gcc.out | tr '\n' ' ')|-|-" >result
			exit 0
		fi
		# -E: no invalid end states (a bounded run stops anywhere);
		# each run is bounded by the model's own bounds; timeout guards it.
		local start=$SECONDS rc=0
		timeout 420 ./pan -E -m200000 -w26 >pan.out 2>&1 || rc=$?
		local secs=$((SECONDS - start))
		local states
		states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out | head -n1)
		local errs
		errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -n1)
		if [[ $rc -eq 124 ]]; then
			echo "error|timeout after 420 s|${states:--}|$secs" >result
		elif grep -q "max search depth too small" pan.out; then
			echo "error|search depth too small (raise -m)|${states:--}|$secs" >result
		elif [[ -z $errs ]]; then
			echo "error|pan exited $rc: $(tail -c 300 pan.out | tr '\n' ' ')|-|$secs" >result
		elif [[ $errs -eq 0 ]]; then
			echo "pass|-|${states:--}|$secs" >result
		else
			local what
			what=$(sed -n 's/^pan:[0-9]*: \(.*\) (at depth.*/\1/p' pan.out | head -n1)
			# the counterexample, as the model's event lines
			# shellcheck disable=SC2086
			spin -t $flags distlock.pml 2>&1 | grep -E 'MSC:|assert' | sed 's/^ *MSC: //' >trail.txt
			echo "fail|${what:-error}|${states:--}|$secs" >result
		fi
	)
}

t0=$SECONDS
names=()
running=0
for row in "${rows[@]}"; do
	IFS='|' read -r name expect prop opt flags <<<"$row"
	selected "$name" || continue
	names+=("$name")
	run "$name" "$opt" "$flags" &
	running=$((running + 1))
	if ((running >= jobs)); then
		wait -n
		running=$((running - 1))
	fi
done
wait

# caught_by VIOLATED PROPS: whether VIOLATED names one of PROPS (separated
# by ','): a mutation may break several properties at once, and which
# assertion the search meets first depends on its order.
caught_by() {
	local p
	IFS=',' read -ra ps <<<"$2"
	for p in "${ps[@]}"; do
		[[ $1 == *"$p"* ]] && return 0
	done
	return 1
}

status=0
printf '%-32s %-7s %-8s %-34s %10s %6s\n' ROW EXPECT GOT "VIOLATED" STATES SECS
for row in "${rows[@]}"; do
	IFS='|' read -r name expect prop opt flags <<<"$row"
	selected "$name" || continue
	IFS='|' read -r verdict violated states secs <"$WORK/$name/result"
	mark=ok
	if [[ $verdict == error ]]; then
		mark="ERROR: $violated"
	elif [[ $expect == pass && $verdict != pass ]]; then
		mark="NOT EXPECTED: the fixed protocol fails; counterexample in $WORK/$name/trail.txt"
	elif [[ $expect == fail && $verdict != fail ]]; then
		mark="NOT CAUGHT: spin found no counterexample"
	elif [[ $expect == fail ]] && ! caught_by "$violated" "$prop"; then
		mark="CAUGHT BY ANOTHER PROPERTY (wanted $prop)"
	fi
	[[ $mark == ok ]] || status=1
	printf '%-32s %-7s %-8s %-34s %10s %6s  %s\n' "$name" "$expect" "$verdict" "${violated#assertion violated }" "$states" "$secs" "$mark"
done
echo "model: $((SECONDS - t0)) s in all"
if [[ $status -ne 0 ]]; then
	[[ ${KEEP:-} == 1 ]] || echo "model: rerun with KEEP=1 WORK=/tmp/m model/check.sh NAME to keep the trail"
	echo "model: FAILED" >&2
fi
exit $status
