#!/usr/bin/env bash
# Runs libFuzzer targets, each for SECONDS with its corpus, FUZZ_JOBS (default 2) at a time,
# and prints one TAP line per target:
#   ok - fuzz NAME: RUNS runs in Ss (N/s), cov C, ft F, corpus K units
#   not ok - fuzz NAME: crash artifact at PATH (log: LOG)
# Exits non-zero if any target found a crash, a leak, a timeout or an out-of-memory.
#
#   tests/fuzz/run.sh SECONDS build/fuzz/bin/fuzz_json ...
#
# Seeds are read from tests/fuzz/corpus/NAME (never written); new units go to
# build/fuzz/corpus/NAME, which later runs start from too (with FUZZ_FRESH=1, as make fuzz-smoke
# does, to build/fuzz/fresh/NAME, emptied first, so that a short run's time stays bounded);
# artifacts go to build/fuzz/artifacts/NAME/, logs to build/fuzz/logs/.
# A target's log holds the sanitizer report; it may hold the crashing input, so it stays in
# build/ and only the report's ERROR and SUMMARY lines are shown here. Extra libFuzzer flags
# can be given in FUZZ_FLAGS.
set -u
cd "$(dirname "$0")/../.." || exit 2
secs=${1:?usage: run.sh SECONDS BINARY...}
shift
jobs=${FUZZ_JOBS:-2}
out=build/fuzz
mkdir -p "$out/logs" "$out/tmp"
# Targets that read files (config, kconfig) write one per run: tmpfs is ten times faster than
# an overlay or disk file system here. Their directory is removed when they exit.
if [ -z "${FUZZ_TMPDIR:-}" ]; then
    FUZZ_TMPDIR=$PWD/$out/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && FUZZ_TMPDIR=/dev/shm
fi
export FUZZ_TMPDIR
# The sanitizers must make any report fatal (the test command sets similar options).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
    local bin=$1 name=${1##*/fuzz_}
    local work=$out/corpus/$name art=$out/artifacts/$name/ log=$out/logs/$name.log
    if [ "${FUZZ_FRESH:-0}" = 1 ]; then
        work=$out/fresh/$name
        rm -rf "$work"
    fi
    local seeds=tests/fuzz/corpus/$name dict=tests/fuzz/dict/$name.dict
    local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$art")
    mkdir -p "$work" "$art"
    local dirs=("$work")
    [ -f "$dict" ] && args+=(-dict="$dict")
    [ -d "$seeds" ] && dirs+=("$seeds")
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    timeout -k 10 $((secs + 120)) "$bin" "${args[@]}" ${FUZZ_FLAGS:-} "${dirs[@]}" \
        </dev/null >"$log" 2>&1
    local st=$?
    if [ $st -eq 0 ]; then
        local runs rate cov ft corp
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
        cov=$(grep -oE ' cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+')
        ft=$(grep -oE ' ft: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+')
        corp=$(find "$work" -type f | wc -l)
        echo "ok - fuzz $name: ${runs:-?} runs in ${secs}s (${rate:-?}/s)," \
             "cov ${cov:-?}, ft ${ft:-?}, corpus $corp units"
        return 0
    fi
    local artifact
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    if [ -z "$artifact" ] && { [ $st -eq 124 ] || [ $st -eq 137 ]; }; then
        artifact="(none: killed after $((secs + 120))s)"
    fi
    echo "not ok - fuzz $name: crash artifact at ${artifact:-(none, status $st)} (log: $log)"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz invariant failed|.*runtime error:)' "$log" | head -n 5 |
        sed 's/^/    /'
    return 1
}

rc=0
pids=()
names=()
for bin in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n
    done
    run_one "$bin" >"$out/logs/${bin##*/fuzz_}.tap" &
    pids+=($!)
    names+=("${bin##*/fuzz_}")
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || rc=1
    cat "$out/logs/${names[$i]}.tap"
done
exit $rc
