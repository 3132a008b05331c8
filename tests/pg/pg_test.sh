#!/usr/bin/env bash
# tests/pg/pg_test.sh: end-to-end tests of the token-validating PostgreSQL (pgstack +
# pam_pgtoken.so). Every case logs in with real psql over TLS (verify-full against the test CA)
# and checks the outcome, and for refusals the reason pam_pgtoken wrote to the server log.
#
# Output is TAP: "ok - NAME" or "not ok - NAME: WHY", then a plan line; exit status 1 if any
# case failed. Needs root (pgstack writes /etc/pam.d), Go, a C compiler, PostgreSQL 15.
#
# Environment:
#   FAKES=PATH        use this fakes binary instead of building build/tests/fakes
#   PAM_PGTOKEN=PATH  use this module instead of building build/tests/pam_pgtoken.so
# The module under ASan/UBSan/LSan is tested by tests/pg/pam_test.sh, without PostgreSQL:
# PostgreSQL 15 hangs at start with libasan preloaded (glibc's bindtextdomain lock).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
PGSTACK=$ROOT/tests/pg/pgstack
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=testlib.sh source-path=SCRIPTDIR
. "$ROOT/tests/pg/testlib.sh"

# A write to a psql that died must fail the test, not kill the script.
trap '' PIPE

build() {
    build_fakes
    if [[ -z ${PAM_PGTOKEN:-} ]]; then
        make_target "$BUILD/tests/pam_pgtoken.so"
        PAM_PGTOKEN=$BUILD/tests/pam_pgtoken.so
    fi
    export FAKES PAM_PGTOKEN
}

# --- the stack ---------------------------------------------------------------------------------

STACK=
PSQL_PID=

cleanup() {
    local rc=$?
    exec 7>&- 2>/dev/null || true
    if [[ -n $PSQL_PID ]]; then kill "$PSQL_PID" 2>/dev/null || true; fi
    if [[ -n $STACK ]]; then
        "$PGSTACK" stop "$STACK" || true
        rm -rf "$STACK"
    fi
    exit "$rc"
}

# --- logins ------------------------------------------------------------------------------------

# conninfo_quote VALUE: VALUE as a libpq conninfo value.
conninfo_quote() {
    local v=${1//\\/\\\\}
    printf "'%s'" "${v//\'/\\\'}"
}

# tls_conninfo ROLE [DB]: the conninfo Azure clients use (full verification of the server).
tls_conninfo() {
    printf 'host=localhost port=%s user=%s dbname=%s sslmode=verify-full sslrootcert=%s' \
        "$PGSTACK_PORT" "$(conninfo_quote "$1")" "$(conninfo_quote "${2:-postgres}")" "$PGSTACK_CA"
}

# login TOKEN CONNINFO_OR_URI: runs `select current_user`; sets LOGIN_RC and LOGIN_OUT (the
# output with the token blanked out, so a failure message never shows it). The token goes in
# PGPASSWORD, except for a URI, which carries it itself.
login() {
    local tok=$1 conn=$2 pw=$1
    [[ $conn != postgresql://* ]] || pw=
    LOGIN_RC=0
    LOGIN_OUT=$(env -u PGPASSWORD ${pw:+PGPASSWORD="$pw"} PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=10 \
        "$PGBIN/psql" -X -Atq -d "$conn" -c 'select current_user' </dev/null 2>&1) || LOGIN_RC=$?
    LOGIN_OUT=${LOGIN_OUT//"$tok"/<token>}
    LOGIN_OUT=${LOGIN_OUT//$'\n'/ }
}

log_mark() { LOG_MARK=$(stat -c %s "$STACK/postgres.log"); }
log_since_mark() { tail -c +"$((LOG_MARK + 1))" "$STACK/postgres.log"; }

# expect_login NAME ROLE TOKEN [CONN]: the login succeeds as ROLE.
expect_login() {
    local name=$1 role=$2 tok=$3 conn=${4:-}
    [[ -n $conn ]] || conn=$(tls_conninfo "$role")
    log_mark
    login "$tok" "$conn"
    if [[ $LOGIN_RC -ne 0 ]]; then
        fail "$name" "login failed (rc $LOGIN_RC): $LOGIN_OUT; log: $(log_since_mark | grep pam_pgtoken | tr '\n' ' ')"
    elif [[ $LOGIN_OUT != "$role" ]]; then
        fail "$name" "current_user is '$LOGIN_OUT', want '$role'"
    else
        pass "$name"
    fi
}

# expect_refused NAME ROLE TOKEN REASON [CONN]: the login fails, and the server log has
# "pam_pgtoken: refused role ROLE: REASON..." (or, when REASON starts with "log:", that text).
expect_refused() {
    local name=$1 role=$2 tok=$3 reason=$4 conn=${5:-} want
    [[ -n $conn ]] || conn=$(tls_conninfo "$role")
    log_mark
    login "$tok" "$conn"
    if [[ $reason == log:* ]]; then want=${reason#log:}; else want="pam_pgtoken: refused role $role: $reason"; fi
    if [[ $LOGIN_RC -eq 0 ]]; then
        fail "$name" "login succeeded as '$LOGIN_OUT'"
    elif ! log_since_mark | grep -qF -- "$want"; then
        fail "$name" "refused, but the log lacks '$want': $(log_since_mark | grep -E 'pam_pgtoken|FATAL' | tr '\n' ' ')"
    else
        pass "$name"
    fi
}

# --- cases ------------------------------------------------------------------------------------

OID_APP1=0c6ad5b4-1d4e-4c0f-9d55-3a5c0c1e0001
OID_APP2=0c6ad5b4-1d4e-4c0f-9d55-3a5c0c1e0002
OID_APP3=0c6ad5b4-1d4e-4c0f-9d55-3a5c0c1e0003
OID_GROUP=7d3f0e22-8a61-4f3b-a0c4-5b2e9d0c0aa1
GROUP_ROLE='group name@contoso.com'

test_valid() {
    mint --set oid=$OID_APP1
    expect_login "valid token logs in as its role" app1 "$TOK"
}

test_group_role_uri() {
    local uri
    mint --set oid=$OID_GROUP
    uri="postgresql://group%20name%40contoso.com:$TOK@localhost:$PGSTACK_PORT/postgres"
    uri+="?sslmode=verify-full&sslrootcert=$PGSTACK_CA"
    expect_login "role with '@' and a space logs in through a percent-encoded URI" "$GROUP_ROLE" \
        "$TOK" "$uri"
}

test_array_audience() {
    mint_raw idp.key --claims "{\"aud\":[\"https://management.azure.com\",\"$AUD\"]}" \
        --set oid=$OID_APP1
    expect_login "audience in an aud array is accepted" app1 "$TOK"
}

test_refusals() {
    local app1_tok app2_tok

    mint --set oid=$OID_APP1 --set iat=@-3700 --set nbf=@-3700 --set exp=@-10
    expect_refused "expired token refused" app1 "$TOK" "token expired"

    mint --set oid=$OID_APP1 --set nbf=@+300
    expect_refused "token with nbf in the future refused" app1 "$TOK" "token not yet valid"

    sign_jwt '{"alg":"RS256","typ":"JWT"}' "{\"aud\":\"$AUD\",\"oid\":\"$OID_APP1\",\"nbf\":$(date +%s)}"
    expect_refused "token without exp refused" app1 "$TOK" "token has no exp claim"

    mint --set oid=$OID_APP1 --set aud=https://management.azure.com
    expect_refused "wrong audience refused" app1 "$TOK" "token audience is not $AUD"

    mint --set oid=$OID_APP2
    expect_refused "token for another role's oid refused" app1 "$TOK" \
        "token oid is not the principal mapped to the role"

    mint_raw other.key --set aud="$AUD" --set oid=$OID_APP1
    expect_refused "token signed by another key refused" app1 "$TOK" \
        "token signature does not verify"

    # An app2 token whose payload is swapped for an app1 payload: valid parts, broken signature.
    mint --set oid=$OID_APP2
    app2_tok=$TOK
    mint --set oid=$OID_APP1
    app1_tok=$TOK
    forge_tampered "$app2_tok" "$app1_tok"
    expect_refused "tampered payload refused" app1 "$TOK" "token signature does not verify"

    forge_alg none "$(payload_of "$app1_tok")"
    expect_refused "alg none refused" app1 "$TOK" "token alg is not RS256"

    forge_alg HS256 "$(payload_of "$app1_tok")"
    expect_refused "alg HS256 signed with the public key refused" app1 "$TOK" \
        "token alg is not RS256"

    expect_refused "plain password refused" app1 'Password1!' "password is not a JWT"

    mint --set oid=$OID_APP1
    expect_refused "non-TLS connection refused" app1 "$TOK" \
        'log:pg_hba.conf rejects connection for host "127.0.0.1", user "app1", database "postgres", no encryption' \
        "host=localhost port=$PGSTACK_PORT user=app1 dbname=postgres sslmode=disable"

    mint --set oid=$OID_APP1
    expect_refused "superuser postgres cannot log in over TCP" postgres "$TOK" \
        "role is not mapped to any principal"
}

test_large_token() {
    mint --set oid=$OID_APP1 --set "pad=$(head -c 4800 /dev/urandom | base64 -w0)"
    if ((${#TOK} < 8192)); then
        fail "8 KB token accepted" "token is only ${#TOK} bytes"
        return
    fi
    expect_login "8 KB token accepted" app1 "$TOK"
}

test_roles_reread() {
    "$PGSTACK" psql "$STACK" -q -c 'CREATE ROLE app3 LOGIN'
    mint --set oid=$OID_APP3
    expect_refused "role with no mapping refused" app3 "$TOK" "role is not mapped to any principal"
    "$PGSTACK" role "$STACK" app3 "$OID_APP3"
    expect_login "mapping added while the server runs is used at the next login" app3 "$TOK"
}

# Azure checks the token only at login: an open session outlives it, a new login does not.
test_session_outlives_token() {
    local name="open session survives its token's expiry" tok exp fifo out rc=0
    mint --set oid=$OID_APP1 --ttl 3
    tok=$TOK
    exp=$(($(date +%s) + 3))            # >= the token's exp, which was set a moment earlier
    fifo=$STACK/session.in
    out=$STACK/session.out
    mkfifo "$fifo"
    PGPASSWORD=$tok "$PGBIN/psql" -X -Atq -d "$(tls_conninfo app1)" <"$fifo" >"$out" 2>&1 &
    PSQL_PID=$!
    exec 7>"$fifo"
    echo "select 'before:' || current_user;" >&7 || true
    for _ in {1..60}; do
        grep -q '^before:app1$' "$out" && break
        kill -0 "$PSQL_PID" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q '^before:app1$' "$out"; then
        fail "$name" "the session did not start: $(tr '\n' ' ' <"$out")"
    else
        while (($(date +%s) <= exp)); do sleep 0.2; done
        expect_refused "new login with that expired token refused" app1 "$tok" "token expired"
        echo "select 'after:' || current_user;" >&7 || true
        echo '\q' >&7 || true
    fi
    exec 7>&-
    wait "$PSQL_PID" || rc=$?
    PSQL_PID=
    if grep -q '^before:app1$' "$out"; then
        if [[ $rc -eq 0 ]] && grep -q '^after:app1$' "$out"; then
            pass "$name"
        else
            fail "$name" "query after expiry failed (psql rc $rc): $(tr '\n' ' ' <"$out")"
        fi
    fi
}

test_log_hygiene() {
    local log=$STACK/postgres.log leaked
    leaked=$(tokens_found_in "$log")
    if [[ ${#TOKENS[@]} -lt 10 ]]; then
        fail "server log contains no token" "only ${#TOKENS[@]} tokens were recorded"
    elif [[ $leaked -ne 0 ]]; then
        fail "server log contains no token" "$leaked of ${#TOKENS[@]} tokens found in $log"
    else
        pass "server log contains no token"
    fi
    if grep -E 'terminated by signal|was terminated by exception' "$log" >&2; then
        fail "no backend crashed" "see the lines above from $log"
    else
        pass "no backend crashed"
    fi
}

main() {
    build
    STACK=$(mktemp -d /tmp/pgtest.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    "$PGSTACK" start "$STACK" >/dev/null
    PKI=$STACK/pki
    # shellcheck disable=SC1091
    . "$STACK/pg.env"
    "$PGSTACK" role "$STACK" app1 "$OID_APP1"
    "$PGSTACK" role "$STACK" app2 "$OID_APP2" app2db
    "$PGSTACK" role "$STACK" "$GROUP_ROLE" "$OID_GROUP"

    test_valid
    test_group_role_uri
    test_array_audience
    test_refusals
    test_large_token
    test_roles_reread
    test_session_outlives_token
    test_log_hygiene

    echo "1..$TESTS"
    if [[ $FAILED -ne 0 ]]; then
        mkdir -p "$BUILD/tests"
        cp "$STACK/postgres.log" "$BUILD/tests/pg_test.postgres.log"
        echo "# $FAILED of $TESTS failed; server log kept in $BUILD/tests/pg_test.postgres.log" >&2
        exit 1
    fi
}

main "$@"
