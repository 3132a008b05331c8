#!/usr/bin/env bash
# Runs unit test binaries given as arguments; each prints TAP-style lines.
# Exits non-zero if any binary failed or crashed (a sanitizer report is a crash).
# PGTR_UNIT_EXEC, split on spaces, runs each binary: e.g. "qemu-aarch64-static -L /"
# for another architecture's tests (packaging/cross.sh).
set -u
rc=0
read -ra pre <<<"${PGTR_UNIT_EXEC:-}"
for t in "$@"; do
    # Tests of the login check need real PostgreSQL servers: their wrapper
    # starts them, runs the binary, and stops them.
    case $t in
    */unit/pg/test_classify | */unit/pg/test_wire | */unit/pg/test_scram) "${pre[@]}" "$t" ;; # no server
    */unit/pg/*) tests/unit/pg/with-pg.sh "$t" ;;
    */unit/kube/test_lease) tests/unit/kube/with-kube.sh "$t" ;;
    *) "${pre[@]}" "$t" ;;
    esac
    st=$?
    if [ $st -eq 1 ]; then
        rc=1
    elif [ $st -ne 0 ]; then
        echo "not ok - $(basename "$t"): crashed or was stopped by a sanitizer (status $st)"
        rc=1
    fi
done
exit $rc
