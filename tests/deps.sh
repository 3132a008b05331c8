#!/usr/bin/env bash
# Installs what building and testing pgtoken-rotator needs, on Debian 12 as root, from
# nothing more than a minimal install (debootstrap --variant=minbase): Debian's
# packages with apt, then the toolchains Debian has too old (Go, Node.js 20 with npm)
# into .cache/toolchains/ (tests/toolchains.sh). Idempotent: apt runs only when a
# package is missing, a toolchain is downloaded only once.
#
#   tests/deps.sh          install
#   tests/deps.sh --env    install, then print the line that puts the toolchains on
#                          PATH, for: eval "$(tests/deps.sh --env)"
#
# Messages go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(
  build-essential pkg-config git ca-certificates curl unzip
  libcjson-dev libyaml-dev libssl-dev libpq-dev    # the controller
  libpam0g-dev postgresql-15 postgresql-client-15 postgresql-contrib    # token-validating PostgreSQL
  clang clang-tidy cppcheck libclang-rt-14-dev                           # lint, fuzzing
  python3 python3-venv                                                   # the Azure SDK and client suites
  yamllint iproute2 procps psmisc jq
)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: not root; run as root or install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts a cluster on install; the tests start their own servers.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
    pg_ctlcluster 15 main stop 2>/dev/null || true
fi

# Go and Node.js: the machine's own when new enough, else pinned downloads.
env_line=$(tests/toolchains.sh)
if [ "${1:-}" = --env ]; then
    echo "$env_line"
fi
