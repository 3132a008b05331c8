# tests/pg/testlib.sh: helpers shared by pg_test.sh and pam_test.sh (sourced, not run).
#
# Callers set ROOT (repo root) and BUILD (absolute build dir) before sourcing, and PKI (a
# directory made by `fakes pki`) before minting tokens.
# shellcheck shell=bash

AUD=https://ossrdbms-aad.database.windows.net

# --- TAP ---------------------------------------------------------------------------------------

TESTS=0
FAILED=0

pass() {
    TESTS=$((TESTS + 1))
    echo "ok - $1"
}

fail() {
    TESTS=$((TESTS + 1))
    FAILED=$((FAILED + 1))
    echo "not ok - $1: $2"
}

# --- building ----------------------------------------------------------------------------------

# Sets FAKES, building build/tests/fakes unless FAKES is already set. Only `fakes pki` and
# `fakes jwt` are used here: a fakes tree broken elsewhere (say, mid-edit of the kube fake) does
# not stop these tests when a built binary is at hand.
build_fakes() {
    [[ -z ${FAKES:-} ]] || return 0
    FAKES=$BUILD/tests/fakes
    if ! (cd "$ROOT/tests" &&
        GOPATH=${GOPATH:-$ROOT/.cache/go} GOCACHE=${GOCACHE:-$ROOT/.cache/go/build} \
            GOFLAGS=${GOFLAGS:--modcacherw} go build -o "$FAKES" ./fakes/cmd/fakes); then
        [[ -x $FAKES ]] || { echo "Bail out! cannot build $FAKES" && exit 1; }
        echo "# warning: go build of the fakes failed; using the existing $FAKES" >&2
    fi
}

# make_target FILE: builds FILE (a path under BUILD) with tests/pg/pg.mk.
make_target() {
    make -s -C "$ROOT" -f tests/pg/pg.mk BUILD="$BUILD" "$1"
}

# --- tokens ------------------------------------------------------------------------------------
# The helpers set TOK rather than print it: a $(...) subshell would lose the TOKENS record, which
# is kept to prove no token reaches a log.

TOKENS=()

# b64url < bytes: unpadded base64url, as JWTs use.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# mint_raw KEY ARGS...: TOK = a token signed by $PKI/KEY (the fakes' jwt command).
mint_raw() {
    local key=$1
    shift
    TOK=$("$FAKES" jwt --key "$PKI/$key" "$@")
    TOKENS+=("$TOK")
}

# mint ARGS...: TOK = a token from the identity provider for PostgreSQL's audience (ARGS may
# override any claim).
mint() { mint_raw idp.key --set aud="$AUD" "$@"; }

# sign_jwt HEADER_JSON CLAIMS_JSON: TOK = a token with exactly these parts, RS256-signed by the
# identity provider's key.
sign_jwt() {
    local input
    input="$(printf '%s' "$1" | b64url).$(printf '%s' "$2" | b64url)"
    TOK="$input.$(printf '%s' "$input" | openssl dgst -sha256 -sign "$PKI/idp.key" | b64url)"
    TOKENS+=("$TOK")
}

# forge STRING: TOK = STRING, a token put together by hand.
forge() {
    TOK=$1
    TOKENS+=("$TOK")
}

# payload_of TOKEN: its middle (claims) part.
payload_of() {
    local p=${1#*.}
    printf '%s\n' "${p%%.*}"
}

# forge_tampered TOKEN_A TOKEN_B: TOK = A's header and signature around B's claims.
forge_tampered() {
    forge "${1%%.*}.$(payload_of "$2").${1##*.}"
}

# forge_alg ALG CLAIMS_PART: TOK = an unsigned-by-RSA token with header alg ALG. For none the
# signature is empty; for HS256 it is an HMAC keyed with the IdP's public key PEM (the classic
# key-confusion attack on verifiers that trust the header's alg).
forge_alg() {
    local input
    input="$(printf '{"alg":"%s","typ":"JWT"}' "$1" | b64url).$2"
    case $1 in
    none) forge "$input." ;;
    *) forge "$input.$(printf '%s' "$input" |
        openssl dgst -sha256 -hmac "$(cat "$PKI/idp.pub")" -binary | b64url)" ;;
    esac
}

# tokens_found_in FILE: prints how many recorded tokens have a part (>= 16 chars) in FILE.
tokens_found_in() {
    local file=$1 tok part n=0
    for tok in "${TOKENS[@]}"; do
        for part in ${tok//./ }; do
            if ((${#part} >= 16)) && grep -qF -- "$part" "$file"; then
                n=$((n + 1))
                break
            fi
        done
    done
    echo "$n"
}
