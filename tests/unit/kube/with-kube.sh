#!/usr/bin/env bash
# tests/unit/kube/with-kube.sh: runs lib/kube unit test binaries that need an API server
# (test_lease) against the fake kube-apiserver (tests/fakes/kube), and always stops it.
#
#   tests/unit/kube/with-kube.sh [BINARY...]   default: $BUILD/tests/unit/kube/test_lease
#   e.g. make unit && tests/unit/kube/with-kube.sh build/tests/unit/kube/test_lease
#        make SAN=1 unit; tests/unit/kube/with-kube.sh build/san/tests/unit/kube/test_lease
#
# In a temporary directory it makes a PKI (fakes pki), writes a token file for one user,
# starts `fakes kube` on 127.0.0.1:0 with namespace pgtr-test, and gives the binaries:
#   PGTR_TEST_KUBECONFIG  a kubeconfig (mode 0600) that authenticates with that bearer token
#   PGTR_TEST_KUBE_URL    https://127.0.0.1:PORT (also the /_fake control API)
#   PGTR_TEST_KUBE_CA     the CA that signed the server's certificate
#   PGTR_TEST_KUBE_NS     pgtr-test
# Output is the binaries' TAP lines; a setup failure prints "not ok - with-kube.sh: ..." and
# exits 1. Needs Go (to build the fakes unless FAKES is set).
#
# Environment: BUILD (default build), FAKES (a built fakes binary), PGTR_TEST_KEEP=1 keeps the
# directory (the server is stopped anyway).
set -uo pipefail
# shellcheck source=../with-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../with-common.sh"
NS=pgtr-test
KUBE_PID=

stop_servers() {
    if [[ -n $KUBE_PID ]]; then
        kill -TERM "$KUBE_PID" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$KUBE_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$KUBE_PID" 2>/dev/null
        wait "$KUBE_PID" 2>/dev/null
    fi
}

start_kube() {
    local token url
    "$FAKES" pki --dir "$WORK/pki" >/dev/null 2>&1 || setup_fail "fakes pki failed"
    token=lease-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    (umask 077 && printf '%s,pgtr-unit,uid-unit,"pgtr:units"\n' "$token" >"$WORK/tokens.csv")
    "$FAKES" kube --pki "$WORK/pki" --addr 127.0.0.1:0 --addr-file "$WORK/kube.addr" \
        --tokens "$WORK/tokens.csv" --namespaces "$NS" \
        --kubeconfig-out "$WORK/admin.kubeconfig" >"$WORK/kube.log" 2>&1 &
    KUBE_PID=$!
    SETUP_LOG=$WORK/kube.log
    for _ in $(seq 1 100); do
        [[ -s $WORK/kube.addr ]] && break
        kill -0 "$KUBE_PID" 2>/dev/null || setup_fail "fakes kube exited"
        sleep 0.1
    done
    [[ -s $WORK/kube.addr ]] || setup_fail "fakes kube did not write its address"
    url=$(sed -n 's/.*"url" *: *"\([^"]*\)".*/\1/p' "$WORK/kube.addr")
    [[ $url == https://127.0.0.1:* ]] || setup_fail "unexpected address file: $(cat "$WORK/kube.addr")"
    (umask 077 && cat >"$WORK/unit.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $url
    certificate-authority: $WORK/pki/ca.crt
users:
- name: unit
  user:
    token: $token
contexts:
- name: fake
  context: {cluster: fake, user: unit, namespace: $NS}
current-context: fake
EOF
    )
    export PGTR_TEST_KUBECONFIG=$WORK/unit.kubeconfig PGTR_TEST_KUBE_URL=$url
    export PGTR_TEST_KUBE_CA=$WORK/pki/ca.crt PGTR_TEST_KUBE_NS=$NS
}

main() {
    local bins=("$@")
    [[ ${#bins[@]} -gt 0 ]] || bins=("$BUILD/tests/unit/kube/test_lease")
    check_bins "${bins[@]}"
    build_fakes
    make_work pgtr-unit-kube
    start_kube
    run_bins "${bins[@]}"
}

main "$@"
