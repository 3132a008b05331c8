#!/usr/bin/env bash
# tests/pg/pam_test.sh: tests of pam_pgtoken.so on its own, through pam_driver (which talks to
# PAM the way PostgreSQL does), built by default with ASan, UBSan and LSan. It covers what the
# PostgreSQL tests cannot reach: module arguments (issuer=, audience=, several keys, broken
# configuration), the 64 KB cap, malformed tokens, leaks; and it times logins.
#
# Output is TAP: "ok - NAME" or "not ok - NAME: WHY", then a plan line; exit status 1 if any case
# failed. Needs root (PAM reads services only from /etc/pam.d), Go, a C compiler.
#
# Environment:
#   FAKES=PATH        use this fakes binary instead of building build/tests/fakes
#   PAM_PGTOKEN=PATH  module to test (default: build/tests/pam_pgtoken_asan.so, built here)
#   PAM_DRIVER=PATH   driver (default: build/tests/pam_driver_asan); a sanitized module needs a
#                     sanitized driver. For a benchmark of the plain build:
#                     PAM_PGTOKEN=build/tests/pam_pgtoken.so PAM_DRIVER=build/tests/pam_driver
#   BENCH_LOGINS=N    logins timed at the end (default 1000)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
# shellcheck source=testlib.sh source-path=SCRIPTDIR
. "$ROOT/tests/pg/testlib.sh"

# Sanitizer exit codes differ from the driver's 0/1/2, and reports are looked for in its output.
export ASAN_OPTIONS=detect_leaks=1:exitcode=86:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=87
export LSAN_OPTIONS=exitcode=86

build() {
    build_fakes
    if [[ -z ${PAM_PGTOKEN:-} ]]; then
        make_target "$BUILD/tests/pam_pgtoken_asan.so"
        PAM_PGTOKEN=$BUILD/tests/pam_pgtoken_asan.so
    fi
    if [[ -z ${PAM_DRIVER:-} ]]; then
        make_target "$BUILD/tests/pam_driver_asan"
        PAM_DRIVER=$BUILD/tests/pam_driver_asan
    fi
    PAM_PGTOKEN=$(realpath "$PAM_PGTOKEN")
}

WORK=
SERVICES=()

cleanup() {
    local rc=$? svc
    for svc in "${SERVICES[@]}"; do rm -f "/etc/pam.d/$svc"; done
    if [[ -n $WORK ]]; then rm -rf "$WORK"; fi
    exit "$rc"
}

# service NAME ARGS...: writes a PAM service using the module with ARGS; sets SVC to its name.
service() {
    local name=$1
    shift
    SVC=pgtoken-test-$(printf '%s' "$WORK" | sha256sum | cut -c1-12)-$name
    SERVICES+=("$SVC")
    printf 'auth required %s %s\n' "$PAM_PGTOKEN" "$*" >"/etc/pam.d/$SVC"
}

# auth SVC USER PASSWORD: one login through the driver; sets RC and OUT (its output, token
# blanked). The output of every run is also kept in $WORK/all.out for the log checks.
auth() {
    local svc=$1 user=$2 pw=$3
    RC=0
    OUT=$(printf '%s' "$pw" | "$PAM_DRIVER" "$svc" "$user" 2>&1) || RC=$?
    printf '%s\n' "$OUT" >>"$WORK/all.out"
    [[ -z $pw ]] || OUT=${OUT//"$pw"/<token>}
    OUT=${OUT//$'\n'/ }
}

sanitizer_report() {
    [[ $RC -eq 86 || $RC -eq 87 || $OUT == *Sanitizer* || $OUT == *"runtime error"* ]]
}

# expect_ok NAME SVC USER PASSWORD
expect_ok() {
    auth "$2" "$3" "$4"
    if sanitizer_report; then
        fail "$1" "sanitizer report (rc $RC): $OUT"
    elif [[ $RC -ne 0 ]]; then
        fail "$1" "refused (rc $RC): $OUT"
    else
        pass "$1"
    fi
}

# expect_refused NAME SVC USER PASSWORD REASON: refused, saying "refused role USER: REASON...".
expect_refused() {
    local want="pam_pgtoken: refused role $3: $5"
    auth "$2" "$3" "$4"
    if sanitizer_report; then
        fail "$1" "sanitizer report (rc $RC): $OUT"
    elif [[ $RC -eq 0 ]]; then
        fail "$1" "accepted"
    elif [[ $RC -ne 1 ]]; then
        fail "$1" "driver error (rc $RC): $OUT"
    elif [[ $OUT != *"$want"* ]]; then
        fail "$1" "refused, but the output lacks '$want': $OUT"
    else
        pass "$1"
    fi
}

OID1=11111111-1111-4111-8111-111111111111
OID2=22222222-2222-4222-8222-222222222222
OID3=33333333-3333-4333-8333-333333333333
OIDG=44444444-4444-4444-8444-444444444444
ISS=https://sts.windows.net/00000000-0000-0000-0000-00000000cafe/

setup() {
    PKI=$WORK/pki
    "$FAKES" pki --dir "$PKI"
    {
        printf '# comment line, then a blank line\n\n'
        printf '%s app1\n' "$OID1"
        printf '%s %s\n' "$(head -c 5000 /dev/zero | tr '\0' x)" "app1"    # over the line cap
        printf '%s app2\r\n' "$OID2"                                      # CRLF
        printf '%s group name@contoso.com\n' "$OIDG"
        printf '%s shared\n%s shared\n' "$OID1" "$OID3"                   # two principals
        printf 'no-role-on-this-line\n'
    } >"$WORK/roles.map"
    cat "$PKI/other.pub" "$PKI/idp.pub" >"$WORK/two.pub"
    openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl ec -pubout 2>/dev/null \
        >"$WORK/ec.pub"
    openssl genrsa 1024 2>/dev/null | openssl rsa -pubout 2>/dev/null >"$WORK/rsa1024.pub"
    BASE="pubkey=$PKI/idp.pub roles=$WORK/roles.map"
}

test_accepts() {
    service default "$BASE"
    DEFAULT=$SVC
    mint --set oid=$OID1
    expect_ok "valid token accepted" "$DEFAULT" app1 "$TOK"
    mint --set oid=$OIDG
    expect_ok "role with '@' and a space accepted" "$DEFAULT" "group name@contoso.com" "$TOK"
    mint --set oid=$OID2
    expect_ok "mapping line with CRLF ending accepted" "$DEFAULT" app2 "$TOK"
    mint --set oid=$OID3
    expect_ok "second principal of a role accepted" "$DEFAULT" shared "$TOK"
    mint_raw idp.key --claims "{\"aud\":[\"api://other\",\"$AUD\"]}" --set oid=$OID1
    expect_ok "audience in an aud array accepted" "$DEFAULT" app1 "$TOK"
    mint --set oid=$OID1 --set nbf=@-5 --set exp=@+2
    expect_ok "token about to expire accepted" "$DEFAULT" app1 "$TOK"
    sign_jwt '{"alg":"RS256"}' "{\"aud\":\"$AUD\",\"oid\":\"$OID1\",\"exp\":$(($(date +%s) + 60))}"
    expect_ok "token without nbf, iat, typ or kid accepted" "$DEFAULT" app1 "$TOK"
    mint --set oid=$OID1 --set "pad=$(head -c 4800 /dev/urandom | base64 -w0)"
    expect_ok "8 KB token accepted" "$DEFAULT" app1 "$TOK"
    mint --set oid=$OID1 --set "pad=$(head -c 33000 /dev/urandom | base64 -w0)"
    expect_ok "60 KB token accepted" "$DEFAULT" app1 "$TOK"
}

test_refusals() {
    local app1_tok app2_tok
    mint --set oid=$OID1 --set iat=@-3700 --set nbf=@-3700 --set exp=@-1
    expect_refused "expired token refused" "$DEFAULT" app1 "$TOK" "token expired"
    mint --set oid=$OID1 --set nbf=@+120
    expect_refused "nbf in the future refused" "$DEFAULT" app1 "$TOK" "token not yet valid"
    sign_jwt '{"alg":"RS256","typ":"JWT"}' "{\"aud\":\"$AUD\",\"oid\":\"$OID1\"}"
    expect_refused "token without exp refused" "$DEFAULT" app1 "$TOK" "token has no exp claim"
    mint --set oid=$OID1 --set exp=tomorrow
    expect_refused "exp that is not a number refused" "$DEFAULT" app1 "$TOK" \
        "token exp claim is not a number"
    mint --set oid=$OID1 --set aud=https://management.azure.com
    expect_refused "wrong audience refused" "$DEFAULT" app1 "$TOK" "token audience is not $AUD"
    mint_raw idp.key --claims '{"aud":["api://a","api://b"]}' --set oid=$OID1
    expect_refused "aud array without the audience refused" "$DEFAULT" app1 "$TOK" \
        "token audience is not"
    mint_raw idp.key --set oid=$OID1
    expect_refused "token without aud refused" "$DEFAULT" app1 "$TOK" "token audience is not"
    mint
    expect_refused "token without oid refused" "$DEFAULT" app1 "$TOK" "token has no oid claim"
    mint --set oid=$OID2
    expect_refused "another role's oid refused" "$DEFAULT" app1 "$TOK" \
        "token oid is not the principal mapped to the role"
    mint --set oid=$OID1
    expect_refused "role absent from the mapping refused" "$DEFAULT" app9 "$TOK" \
        "role is not mapped to any principal"
    expect_refused "role name matched exactly (no prefix match)" "$DEFAULT" app "$TOK" \
        "role is not mapped to any principal"
    mint_raw other.key --set aud="$AUD" --set oid=$OID1
    expect_refused "token signed by another key refused" "$DEFAULT" app1 "$TOK" \
        "token signature does not verify"

    mint --set oid=$OID2
    app2_tok=$TOK
    mint --set oid=$OID1
    app1_tok=$TOK
    forge_tampered "$app2_tok" "$app1_tok"
    expect_refused "tampered payload refused" "$DEFAULT" app1 "$TOK" \
        "token signature does not verify"
    forge "${app1_tok%?}$([[ ${app1_tok: -1} == A ]] && echo Q || echo A)"
    expect_refused "altered signature refused" "$DEFAULT" app1 "$TOK" "token signature"
    forge_alg none "$(payload_of "$app1_tok")"
    expect_refused "alg none refused" "$DEFAULT" app1 "$TOK" "token alg is not RS256"
    forge_alg HS256 "$(payload_of "$app1_tok")"
    expect_refused "alg HS256 signed with the public key refused" "$DEFAULT" app1 "$TOK" \
        "token alg is not RS256"
    forge_alg RS512 "$(payload_of "$app1_tok")"
    expect_refused "alg RS512 refused" "$DEFAULT" app1 "$TOK" "token alg is not RS256"
    sign_jwt '{"typ":"JWT"}' "{\"aud\":\"$AUD\",\"oid\":\"$OID1\",\"exp\":9999999999}"
    expect_refused "header without alg refused" "$DEFAULT" app1 "$TOK" "token alg is not RS256"
    sign_jwt '{"alg":"RS256","crit":["exp"]}' "{\"aud\":\"$AUD\",\"oid\":\"$OID1\",\"exp\":9999999999}"
    expect_refused "header with crit refused" "$DEFAULT" app1 "$TOK" "token header has crit"
    sign_jwt '{"alg":"RS256"}' 'not json'
    expect_refused "signed claims that are not JSON refused" "$DEFAULT" app1 "$TOK" \
        "token claims are not base64url JSON"
    sign_jwt '{"alg":"RS256"}' '["a","b"]'
    expect_refused "signed claims that are not an object refused" "$DEFAULT" app1 "$TOK" \
        "token claims are not base64url JSON"
}

test_malformed() {
    local app1_tok hdr
    mint --set oid=$OID1
    app1_tok=$TOK
    hdr=${app1_tok%%.*}
    expect_refused "plain password refused" "$DEFAULT" app1 'Password1!' "password is not a JWT"
    expect_refused "empty password refused" "$DEFAULT" app1 '' "password is not a JWT"
    expect_refused "two dots only refused" "$DEFAULT" app1 '..' "token header is not base64url JSON"
    expect_refused "four parts refused" "$DEFAULT" app1 "$app1_tok.x" "password is not a JWT"
    expect_refused "padded header refused" "$DEFAULT" app1 "$hdr=.${app1_tok#*.}" \
        "token header is not base64url JSON"
    expect_refused "base64 (not base64url) signature refused" "$DEFAULT" app1 \
        "${app1_tok%.*}.+/+/" "token signature is not base64url"
    expect_refused "header that is not JSON refused" "$DEFAULT" app1 \
        "$(printf 'hello' | b64url).${app1_tok#*.}" "token header is not base64url JSON"
    expect_refused "header of 5 KB refused" "$DEFAULT" app1 \
        "$(head -c 5000 /dev/zero | tr '\0' A).${app1_tok#*.}" "token header is not base64url JSON"
    expect_refused "leading newline refused" "$DEFAULT" app1 $'\n'"$app1_tok"$'\n' \
        "token header is not base64url JSON"
    mint --set oid=$OID1 --set "pad=$(head -c 52000 /dev/urandom | base64 -w0)"
    expect_refused "token over 64 KB refused" "$DEFAULT" app1 "$TOK" "token longer than 65536 bytes"
}

test_arguments() {
    mint --set oid=$OID1 --set iss="$ISS"
    local with_iss=$TOK

    service issuer "$BASE issuer=$ISS"
    expect_ok "issuer= accepts its issuer" "$SVC" app1 "$with_iss"
    mint --set oid=$OID1 --set iss=https://evil.example/
    expect_refused "issuer= refuses another issuer" "$SVC" app1 "$TOK" "token issuer is not $ISS"
    mint --set oid=$OID1
    expect_refused "issuer= refuses a token without iss" "$SVC" app1 "$TOK" "token issuer is not"
    expect_ok "without issuer=, iss is not checked" "$DEFAULT" app1 "$with_iss"

    service audience "$BASE audience=api://custom"
    mint --set oid=$OID1 --set aud=api://custom
    expect_ok "audience= accepts its audience" "$SVC" app1 "$TOK"
    mint --set oid=$OID1
    expect_refused "audience= refuses the default audience" "$SVC" app1 "$TOK" \
        "token audience is not api://custom"

    service twokeys "pubkey=$WORK/two.pub roles=$WORK/roles.map"
    mint --set oid=$OID1
    expect_ok "PEM file with two keys: second key verifies" "$SVC" app1 "$TOK"
    mint_raw other.key --set aud="$AUD" --set oid=$OID1
    expect_ok "PEM file with two keys: first key verifies" "$SVC" app1 "$TOK"
    mint_raw sa.key --set aud="$AUD" --set oid=$OID1
    expect_refused "PEM file with two keys: a third key refused" "$SVC" app1 "$TOK" \
        "token signature does not verify"

    service twoargs "pubkey=$PKI/other.pub pubkey=$PKI/idp.pub roles=$WORK/roles.map"
    mint --set oid=$OID1
    expect_ok "two pubkey= arguments: either key verifies" "$SVC" app1 "$TOK"

    mint --set oid=$OID1
    service nokeyfile "pubkey=$WORK/missing.pub roles=$WORK/roles.map"
    expect_refused "missing pubkey file refused" "$SVC" app1 "$TOK" "cannot open pubkey file"
    service notakey "pubkey=$PKI/ca.crt roles=$WORK/roles.map"
    expect_refused "pubkey file without a PUBLIC KEY refused" "$SVC" app1 "$TOK" \
        "no PUBLIC KEY block in"
    service eckey "pubkey=$WORK/ec.pub pubkey=$PKI/idp.pub roles=$WORK/roles.map"
    expect_refused "EC public key refused (configuration error)" "$SVC" app1 "$TOK" \
        "$WORK/ec.pub: a key is not RSA of at least 2048 bits"
    service smallkey "pubkey=$PKI/idp.pub pubkey=$WORK/rsa1024.pub roles=$WORK/roles.map"
    expect_refused "1024-bit RSA key refused (configuration error)" "$SVC" app1 "$TOK" \
        "$WORK/rsa1024.pub: a key is not RSA of at least 2048 bits"
    service noroles "pubkey=$PKI/idp.pub roles=$WORK/missing.map"
    expect_refused "missing roles file refused" "$SVC" app1 "$TOK" "cannot read roles file"
    service unknown "$BASE issuers=$ISS"
    expect_refused "unknown argument refused" "$SVC" app1 "$TOK" \
        "configuration error: unknown module argument 'issuers="
    service norolesarg "pubkey=$PKI/idp.pub"
    expect_refused "no roles= argument refused" "$SVC" app1 "$TOK" \
        "configuration error: no roles= argument"
    service nokeyarg "roles=$WORK/roles.map"
    expect_refused "no pubkey= argument refused" "$SVC" app1 "$TOK" \
        "configuration error: no pubkey= argument"
}

test_hygiene() {
    local leaked
    leaked=$(tokens_found_in "$WORK/all.out")
    if [[ $leaked -ne 0 ]]; then
        fail "module output contains no token" "$leaked of ${#TOKENS[@]} tokens found"
    else
        pass "module output contains no token"
    fi
}

test_bench() {
    local n=${BENCH_LOGINS:-1000} out rc=0
    mint --set oid=$OID1
    out=$(printf '%s' "$TOK" | "$PAM_DRIVER" "$DEFAULT" app1 "$n" 2>&1) || rc=$?
    if [[ $rc -ne 0 ]]; then
        fail "$n logins in a row accepted" "rc $rc: ${out//"$TOK"/<token>}"
    else
        pass "$n logins in a row accepted"
        echo "# $(basename "$PAM_PGTOKEN"): $out"
    fi
}

main() {
    build
    WORK=$(mktemp -d /tmp/pamtest.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    setup
    test_accepts
    test_refusals
    test_malformed
    test_arguments
    test_hygiene
    test_bench
    echo "1..$TESTS"
    if [[ $FAILED -ne 0 ]]; then
        echo "# $FAILED of $TESTS failed" >&2
        exit 1
    fi
}

main "$@"
