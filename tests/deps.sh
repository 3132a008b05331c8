#!/usr/bin/env bash
# Installs what building and testing pgtoken-rotator needs, from Debian's
# packages. Idempotent: apt runs only when something is missing.
set -euo pipefail

pkgs=(
  build-essential pkg-config git ca-certificates
  libcurl4-openssl-dev libcjson-dev libyaml-dev libssl-dev libpq-dev libmicrohttpd-dev  # the controller
  libpam0g-dev postgresql-15 postgresql-client-15 postgresql-contrib    # token-validating PostgreSQL
  clang clang-tidy cppcheck libclang-rt-14-dev                           # lint, fuzzing
  yamllint iproute2 procps psmisc curl
)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: not root; run as root or install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts a cluster on install; the tests start their own servers.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
    pg_ctlcluster 15 main stop 2>/dev/null || true
fi

# Go builds the test fakes (standard library only) and the real kube-apiserver.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH=$PATH:/usr/local/go/bin
fi
if ! command -v go >/dev/null 2>&1; then
    echo "deps: Go is missing. Install Go 1.22 or newer (the fakes need it)." >&2
    exit 1
fi
gov=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n' 1.22 "$gov" | sort -V | head -1)" != 1.22 ]; then
    echo "deps: Go $gov is too old; the fakes need Go 1.22 or newer." >&2
    exit 1
fi
