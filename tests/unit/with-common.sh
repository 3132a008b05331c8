# tests/unit/with-common.sh: what the unit-test wrappers that start a server share
# (tests/unit/kube/with-kube.sh, tests/unit/pg/with-pg.sh). Sourced, not run.
#
# Gives ROOT, BUILD, WORK (set by make_work), and:
#   setup_fail MSG...   "not ok - <script>: MSG" (plus the tail of $SETUP_LOG if set), exit 1
#   build_fakes         builds tests/fakes into $BUILD/tests/fakes unless FAKES is set
#   check_bins BIN...   each must be an executable test binary
#   make_work PREFIX    a temporary directory; removed at exit unless PGTR_TEST_KEEP=1,
#                       after the script's own stop_servers (define it) has run
#   run_bins BIN...     runs each; returns 1 if any failed or crashed

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
WORK=
SETUP_LOG=
SCRIPT_NAME=$(basename "$0")

setup_fail() {
    echo "not ok - $SCRIPT_NAME: $*"
    if [[ -n $SETUP_LOG && -f $SETUP_LOG ]]; then
        tail -n 20 "$SETUP_LOG" | sed 's/^/    /'
    fi
    exit 1
}

build_fakes() {
    if [[ -z ${FAKES:-} ]]; then
        mkdir -p "$BUILD/tests"
        (cd "$ROOT/tests" &&
            PATH=$PATH:/usr/local/go/bin GOPATH=${GOPATH:-$ROOT/.cache/go} \
                GOCACHE=${GOCACHE:-$ROOT/.cache/go/build} GOFLAGS=${GOFLAGS:--modcacherw} \
                GOTOOLCHAIN=${GOTOOLCHAIN:-local} go build -o "$BUILD/tests/fakes" ./fakes/cmd/fakes) ||
            setup_fail "could not build the fakes (set FAKES to use a built one)"
        FAKES=$BUILD/tests/fakes
    fi
    export FAKES
}

check_bins() {
    local b
    for b in "$@"; do
        [[ -x $b ]] || setup_fail "no test binary at $b (make unit, or make SAN=1 unit)"
    done
}

cleanup_work() {
    local rc=$?
    declare -F stop_servers >/dev/null && stop_servers
    if [[ -n $WORK ]]; then
        if [[ ${PGTR_TEST_KEEP:-0} == 1 ]]; then
            echo "# $SCRIPT_NAME: kept $WORK" >&2
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}

make_work() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX") || setup_fail "mktemp failed"
    trap cleanup_work EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

run_bins() {
    local rc=0 st b pre
    read -ra pre <<<"${PGTR_UNIT_EXEC:-}" # as tests/unit/run.sh
    for b in "$@"; do
        st=0
        "${pre[@]}" "$b" || st=$?
        if [[ $st -eq 1 ]]; then
            rc=1
        elif [[ $st -ne 0 ]]; then
            echo "not ok - $(basename "$b"): crashed or was stopped by a sanitizer (status $st)"
            rc=1
        fi
    done
    return $rc
}
