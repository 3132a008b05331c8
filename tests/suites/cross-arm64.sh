#!/usr/bin/env bash
# The arm64 build, run here under qemu-user-static: packaging/cross.sh builds the
# controller and its unit tests with Debian's cross toolchain; the binary's
# `version` must name this VERSION, and the unit tests must pass as
# they do natively (the PostgreSQL and API server peers they start are this
# machine's own). On an arm64 machine the same runs natively.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
out=$(packaging/cross.sh arm64 --unit 2>&1)
st=$?
echo "$out" | grep -v '^  \(CC\|AR\|LD\|TEST\) '
if [ $st -eq 3 ]; then
    echo "--- SKIP: CrossArm64 ($(echo "$out" | grep '^SKIP' | tail -n 1))"
    exit 0
fi
[ $st -eq 0 ] || { echo "not ok - arm64 build: packaging/cross.sh exited $st"; exit 1; }
run=()
[ "$(dpkg --print-architecture)" = arm64 ] || run=(qemu-aarch64-static -L /)
bin=build/arm64/bin/pgtoken-rotator
want="pgtoken-rotator $(cat VERSION) (" # then the commit it was built at
if ! file -b "$bin" 2>/dev/null | grep -q 'ARM aarch64' && ! od -An -tx1 -j18 -N2 "$bin" | grep -q 'b7 00'; then
    echo "not ok - arm64 binary: $bin is not an aarch64 ELF file"
    exit 1
fi
got=$("${run[@]}" "$bin" version 2>&1)
if [[ $got == "$want"*")" ]]; then
    echo "ok - arm64 binary: version under ${run[*]:-native}: $got"
else
    echo "not ok - arm64 binary: version printed '$got', want '$want<commit>)'"
    exit 1
fi
mapfile -t bins < <(find build/arm64/tests/unit -type f -name 'test_*' ! -name '*.d' | sort)
[ ${#bins[@]} -gt 0 ] || { echo "not ok - arm64 unit tests: none were built"; exit 1; }
# The peers the pg and lease tests start are this machine's (build/), as natively.
if [ ${#run[@]} -gt 0 ]; then
    export PGTR_UNIT_EXEC="${run[*]}" PGTR_UNIT_EMULATED=1
fi
tests/unit/run.sh "${bins[@]}" | sed 's/^\(not \)\{0,1\}ok - /&arm64 /'
exit "${PIPESTATUS[0]}"
