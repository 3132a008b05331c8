#!/usr/bin/env bash
# tests/unit/pg/with-pg.sh: runs lib/pg unit test binaries against real token-validating
# PostgreSQL servers (tests/pg/pgstack), and always stops them.
#
#   tests/unit/pg/with-pg.sh [BINARY...]     default: $BUILD/tests/unit/pg/test_pgcheck
#   e.g. make unit && tests/unit/pg/with-pg.sh build/tests/unit/pg/test_pgcheck
#        make SAN=1 unit; tests/unit/pg/with-pg.sh build/san/tests/unit/pg/test_pgcheck
#
# It starts two stacks in a temporary directory:
#   s1: the normal stack (TLS, certificate for localhost/127.0.0.1), with
#       roles   app1 (oid ...0001, can log in), nologin (mapped, NOLOGIN), and a mapping for
#               ghost (oid ...0003) with no such role; database lockeddb without CONNECT for
#               PUBLIC; log_connections on (tests count logins in s1/postgres.log)
#   s2: the same identity provider and CA, but a server certificate for db.example.test only
#       (host name mismatch), role app1, and a `trust` pg_hba line for role trustme
# and mints tokens (files, mode 0600, never in the environment) into DIR/tokens:
#   valid, valid2, valid3 (app1, distinct), expired (app1), nologin, ghost, foreign (app1,
#   signed by a key the server does not trust)
# The binaries get: PGTR_TEST_PG_ENV=s1/pg.env, PGTR_TEST_PG2_ENV=s2/pg.env,
# PGTR_TEST_PG_TOKENS=DIR/tokens. Output is the binaries' TAP lines; a setup failure prints
# "not ok - with-pg.sh: ..." and exits 1. Needs root (pgstack writes /etc/pam.d), Go (to build
# the fakes unless FAKES is set), openssl, PostgreSQL 15.
#
# Environment: BUILD (default build), FAKES, PAM_PGTOKEN (as for tests/pg/pg_test.sh),
# PGTR_TEST_KEEP=1 keeps the directory (servers are stopped anyway).
set -uo pipefail
# shellcheck source=../with-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../with-common.sh"
PGSTACK=$ROOT/tests/pg/pgstack
AUD=https://ossrdbms-aad.database.windows.net
OID_APP1=5a1b0c2d-0000-4000-8000-000000000001
OID_NOLOGIN=5a1b0c2d-0000-4000-8000-000000000002
OID_GHOST=5a1b0c2d-0000-4000-8000-000000000003
S1=
S2=

stop_servers() {
    if [[ -n $S2 ]]; then "$PGSTACK" stop "$S2" >/dev/null 2>&1 || true; fi
    if [[ -n $S1 ]]; then "$PGSTACK" stop "$S1" >/dev/null 2>&1 || true; fi
}

build_tools() {
    build_fakes
    if [[ -z ${PAM_PGTOKEN:-} ]]; then
        make -s -C "$ROOT" -f tests/pg/pg.mk BUILD="$BUILD" "$BUILD/tests/pam_pgtoken.so" ||
            setup_fail "could not build the PAM module"
        PAM_PGTOKEN=$BUILD/tests/pam_pgtoken.so
    fi
    export PAM_PGTOKEN
}

admin() { "$PGSTACK" psql "$1" -X -q -v ON_ERROR_STOP=1 "${@:2}" >/dev/null; }

# mint FILE KEY CLAIM...: a token signed by pki/KEY of s1, written to tokens/FILE.
mint() {
    local file=$1 key=$2
    shift 2
    (umask 077 && "$FAKES" jwt --key "$S1/pki/$key" --set aud="$AUD" "$@" >"$WORK/tokens/$file") ||
        setup_fail "could not mint token $file"
}

setup_s1() {
    "$PGSTACK" start "$S1" >/dev/null || setup_fail "pgstack start $S1 failed"
    "$PGSTACK" role "$S1" app1 "$OID_APP1" || setup_fail "pgstack role app1 failed"
    "$PGSTACK" role "$S1" nologin "$OID_NOLOGIN" || setup_fail "pgstack role nologin failed"
    # A principal mapped to a role name PostgreSQL does not have.
    printf '%s %s\n' "$OID_GHOST" ghost >>"$S1/roles.map"
    admin "$S1" -c 'ALTER ROLE nologin NOLOGIN' -c 'CREATE DATABASE lockeddb' \
        -c 'REVOKE CONNECT ON DATABASE lockeddb FROM PUBLIC' \
        -c 'ALTER SYSTEM SET log_connections = on' -c 'SELECT pg_reload_conf()' ||
        setup_fail "could not configure $S1"
}

setup_s2() {
    local hba
    # Same CA and identity provider as s1; a server certificate for another name.
    mkdir -p "$S2"
    cp -a "$S1/pki" "$S2/pki"
    openssl req -x509 -new -newkey rsa:2048 -nodes -days 2 -subj /CN=db.example.test \
        -addext subjectAltName=DNS:db.example.test -addext extendedKeyUsage=serverAuth \
        -CA "$S1/pki/ca.crt" -CAkey "$S1/pki/ca.key" \
        -keyout "$S2/pki/server.key" -out "$S2/pki/server.crt" 2>/dev/null ||
        setup_fail "could not make the db.example.test certificate"
    "$PGSTACK" start "$S2" >/dev/null || setup_fail "pgstack start $S2 failed"
    "$PGSTACK" role "$S2" app1 "$OID_APP1" || setup_fail "pgstack role app1 (s2) failed"
    admin "$S2" -c 'CREATE ROLE trustme LOGIN' || setup_fail "could not create trustme"
    # A trust line ahead of pgstack's rules (rewritten in place: the file belongs to postgres).
    hba=$S2/pgdata/pg_hba.conf
    { echo 'hostssl  all      trustme  127.0.0.1/32  trust'; cat "$hba"; } >"$WORK/hba.tmp"
    cat "$WORK/hba.tmp" >"$hba"
    admin "$S2" -c 'SELECT pg_reload_conf()' || setup_fail "could not reload $S2"
}

main() {
    local bins=("$@") rc=0
    [[ ${#bins[@]} -gt 0 ]] || bins=("$BUILD/tests/unit/pg/test_pgcheck")
    check_bins "${bins[@]}"
    build_tools
    make_work pgtr-unit-pg
    # The server (user postgres) must reach the stacks' sockets and files.
    chmod 0755 "$WORK"
    mkdir -m 0700 "$WORK/tokens"
    S1=$WORK/s1
    S2=$WORK/s2
    setup_s1
    setup_s2

    mint valid idp.key --set oid=$OID_APP1 --ttl 600
    mint valid2 idp.key --set oid=$OID_APP1 --ttl 600 --set jti=second
    mint valid3 idp.key --set oid=$OID_APP1 --ttl 600 --set jti=third
    mint expired idp.key --set oid=$OID_APP1 --set iat=@-3700 --set nbf=@-3700 --set exp=@-10
    mint nologin idp.key --set oid=$OID_NOLOGIN --ttl 600
    mint ghost idp.key --set oid=$OID_GHOST --ttl 600
    mint foreign other.key --set oid=$OID_APP1 --ttl 600

    export PGTR_TEST_PG_ENV=$S1/pg.env PGTR_TEST_PG2_ENV=$S2/pg.env PGTR_TEST_PG_TOKENS=$WORK/tokens
    run_bins "${bins[@]}" || rc=1
    if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:|terminated by signal' \
        "$S1/postgres.log" "$S2/postgres.log" >&2; then
        echo "not ok - with-pg.sh: a server backend crashed (see above)"
        rc=1
    fi
    return $rc
}

main "$@"
