#!/usr/bin/env bash
# test.sh: the gate behind `make test`.
#
# gofmt, go vet, every package's tests with -race, the soak's short run, the
# benchmarks' own tests, and the protocol model (model/check.sh).
#
# The model is CPU-bound (spin's searches, about 6 CPU-minutes); the Go
# tests mostly wait on timers and on redis-server (they keep about a fifth
# of the 2 cores busy). So the model runs beside the root package's tests at
# the idle scheduling class (chrt -i 0; nice -n 19 where chrt is missing):
# it takes only the CPU time the tests leave (the CLI's terminal tests
# still missed deadlines beside it, so the other packages run first). Its
# table is printed at the end; the gate fails if either part fails.
#
# MODEL=serial runs the model after the tests instead (the old order, for
# a machine where the two should not share the CPU).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}

step() {
	echo "+ $*"
	"$@"
}

unformatted=$(gofmt -l .) || exit 1
if [[ -n $unformatted ]]; then
	echo "gofmt: these files are not formatted (run gofmt -w):"
	echo "$unformatted"
	exit 1
fi
step "$GO" vet ./... || exit 1

model_log=$(mktemp "${TMPDIR:-/tmp}/distlock-model-log.XXXXXX")
model_pid=
model_group=
start_model() {
	local idle=(nice -n 19)
	if command -v chrt >/dev/null 2>&1 && chrt -i 0 true 2>/dev/null; then
		idle=(chrt -i 0)
	fi
	# setsid: its own process group, so that stopping it stops its pan
	# processes too.
	if command -v setsid >/dev/null 2>&1; then
		idle+=(setsid)
		model_group=-
	fi
	echo "+ ${idle[*]} model/check.sh >$model_log &  (its table comes at the end)"
	"${idle[@]}" model/check.sh >"$model_log" 2>&1 &
	model_pid=$!
}
stop_model() {
	[[ -n $model_pid ]] && kill -- "$model_group$model_pid" 2>/dev/null
	rm -f "$model_log"
}
trap stop_model EXIT
trap 'exit 130' INT TERM

status=0
# Build every test binary first: compiled beside running tests (the first
# minute of one go test ./...), the timing-sensitive ones missed their
# per-master timeouts in clean-clone CI runs.
# A test that does not build ends the gate at once (the model with it).
step "$GO" test -race -count=1 -run '^$' ./... >/dev/null || exit 1
# The command-line tool's terminal tests (job control, Ctrl-Z) missed their
# deadlines beside CPU-bound work even at the idle class (TestRunCtrlZ,
# with two idle-class busy loops: 1 run in 8 failed): every package but
# the root one runs before the model starts, the root one beside it.
others=$("$GO" list ./... | grep -vx 'github.com/distlock/distlock')
# shellcheck disable=SC2086 # package paths are words
step "$GO" test -race -count=1 -timeout 8m $others || status=1
[[ ${MODEL:-} == serial ]] || start_model
step "$GO" test -race -count=1 -timeout 8m . || status=1
# The soak's short run with -v, less its per-test RUN lines: its figures and
# each phase's time are in the log (one CI run took 286 s, not about 60,
# and the log could not say where).
(cd soak && step "$GO" vet ./... && step "$GO" test -race -count=1 -short -timeout 8m -v ./... |
	grep -vE '^(=== RUN|=== PAUSE|=== CONT|    --- PASS: TestAnalyze/)') || status=1
(cd benchmarks && step "$GO" vet ./... && step "$GO" test -count=1 -run 'TestPeers|TestDistance|TestHandoffProcs|TestAcquireBreakdownVariants' ./...) || status=1

if [[ -z $model_pid ]]; then
	step model/check.sh || status=1
else
	echo "+ wait for model/check.sh"
	wait "$model_pid" || status=1
	model_pid=
	cat "$model_log"
fi
exit $status
