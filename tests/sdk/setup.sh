#!/usr/bin/env bash
# Installs the real Azure SDKs that tests/e2e/sdk_test.go runs against the fake
# Entra ID and IMDS, at pinned versions:
#   Python  azure-identity (MSAL, aiohttp for azure.identity.aio): every package
#           pinned with hashes in requirements.txt (generated from requirements.in)
#           -> .venv-sdk/ at the repository root
#   Node    @azure/identity (msal-node): package.json + package-lock.json, npm ci
#           -> tests/sdk/node_modules/
# Idempotent: each install writes a stamp (hash of the pins and the interpreter
# version); a later run with the same stamp does nothing, so it takes well under
# a second. Environment: PYTHON (default python3), PGTR_SDK_VENV (default
# ROOT/.venv-sdk).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${PGTR_SDK_VENV:-$root/.venv-sdk}
python=${PYTHON:-python3}

die() {
    echo "sdk setup: $*" >&2
    exit 1
}

stamp_of() { # stamp_of FILE CMD...: hash of FILE and of what CMD prints
    local f=$1
    shift
    { sha256sum <"$f"; "$@"; } | sha256sum | cut -d' ' -f1
}

# --- Python -------------------------------------------------------------
command -v "$python" >/dev/null || die "$python not found (set PYTHON)"
py_version=$("$python" -c 'import sys; print("%d.%d %s" % (sys.version_info[:2] + (sys.version.split()[0],)))')
case $py_version in
3.9\ * | 3.[1-9][0-9]\ *) ;;
*) die "$python is Python ${py_version#* }; azure-identity 1.27 needs 3.9 or newer" ;;
esac
py_stamp=$venv/.pgtr-sdk-stamp
py_want=$(stamp_of "$here/requirements.txt" echo "$python $py_version")
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$py_stamp" 2>/dev/null)" != "$py_want" ]; then
    echo "sdk setup: installing azure-identity into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "cannot make a virtualenv with $python (Debian: apt-get install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-hashes --no-deps --only-binary=:all: -r "$here/requirements.txt" ||
        die "pip install failed"
    "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null || die "pip check failed"
    "$venv/bin/python" -c 'import azure.identity, azure.identity.aio, aiohttp, msal' ||
        die "the installed SDK does not import"
    "$venv/bin/python" -c 'import importlib.metadata as m; print(" ".join("%s %s" % (p, m.version(p)) for p in ("azure-identity", "msal", "azure-core", "aiohttp")))' >"$venv/.pgtr-sdk-versions"
    echo "$py_want" >"$py_stamp"
fi

# --- Node ---------------------------------------------------------------
command -v node >/dev/null || die "node not found"
command -v npm >/dev/null || die "npm not found"
node_version=$(node --version)
major=${node_version#v}
[ "${major%%.*}" -ge 20 ] || die "node $node_version is older than 20 (@azure/identity 4.13 needs 20+)"
node_stamp=$here/node_modules/.pgtr-sdk-stamp
node_want=$(stamp_of "$here/package-lock.json" echo "$node_version")
if [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
    echo "sdk setup: installing @azure/identity into $here/node_modules"
    (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || die "npm ci failed"
    (cd "$here" && node -e 'require("@azure/identity")') || die "@azure/identity does not load"
    (cd "$here" && node -e 'const r = require.resolve("@azure/identity");
        console.log(["@azure/identity", "@azure/msal-node", "@azure/core-rest-pipeline"].map(p =>
            p + " " + require(require.resolve(p + "/package.json", { paths: [r] })).version).join(" "))') \
        >"$here/node_modules/.pgtr-sdk-versions"
    echo "$node_want" >"$node_stamp"
fi

echo "sdk setup: python ${py_version#* }: $(cat "$venv/.pgtr-sdk-versions")"
echo "sdk setup: node $node_version: $(cat "$here/node_modules/.pgtr-sdk-versions")"
