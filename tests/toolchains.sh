#!/usr/bin/env bash
# The toolchains Debian 12 has too old or not at all: Go (the fakes, the real
# kube-apiserver tier and the chart checks need the newest `go` line of the project's
# go.mod files) and Node.js 20 or newer with npm (the SDK, client and chart suites).
# A machine that has them keeps them; otherwise they are installed into
# .cache/toolchains/ (ignored by git) from the registries the project uses anyway:
#
#   Go       golang.org/toolchain from the Go module proxy (the official release, as a
#            module zip; `go` itself downloads toolchains this way)
#   Node.js  node-linux-<arch> from the npm registry (the official binary release)
#   npm      npm from the npm registry
#
# each checked against the SHA-256 or SHA-512 pinned below before it is unpacked.
# Prints the shell line that puts them first on PATH:
#
#   eval "$(tests/toolchains.sh)"
#
# Needs curl, unzip and tar (tests/deps.sh installs them). Exit 1 with a message on
# stderr when a download fails or does not match its pin.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=$root/.cache/toolchains

say() { echo "toolchains: $*" >&2; }
die() {
    say "$*"
    exit 1
}

arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
case $arch in
amd64 | x86_64) arch=amd64 node_arch=x64 ;;
arm64 | aarch64) arch=arm64 node_arch=arm64 ;;
*) die "no pinned toolchains for architecture $arch (amd64 and arm64 are pinned)" ;;
esac

# ---- pins ------------------------------------------------------------------------------
GO_VERSION=1.26.8
declare -A GO_SHA256=(
    [amd64]=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
    [arm64]=02b36b6787b3ac767668f630e2998df45a3b1f9ffee08d1bf3ef6487cd658d99
)
NODE_VERSION=20.20.2
declare -A NODE_SHA512=( # the npm registry's dist.integrity, in hex
    [x64]=3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1
    [arm64]=2c25c99cd4c58b21ae601c36819488e4e04531b92300fb7cb2a0ff34aad6a04d90983812b9b4ea16783a19a349f4427c1e9c413067165a96db72ce15a3e0a71a
)
NPM_VERSION=10.9.9
NPM_SHA512=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862

# ---- what the project needs ------------------------------------------------------------
# The newest go line of the go.mod files: what every module can be built with.
go_need=$(awk '$1 == "go" {print $2}' tests/go.mod tests/realkube/go.mod tests/realkube/etcd/go.mod \
    bench/go.mod 2>/dev/null | sort -V | tail -n1)
node_need=20

ver_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

fetch() { # fetch URL FILE: download to FILE (atomically)
    curl -fsSL --retry 3 -o "$2.part" "$1" || die "download failed: $1"
    mv "$2.part" "$2"
}

check() { # check ALGO FILE HEX
    local got
    got=$("${1}sum" "$2" | cut -d' ' -f1)
    [ "$got" = "$3" ] || {
        rm -f "$2"
        die "$(basename "$2"): ${1} $got, pinned $3: refusing it"
    }
}

path=()

# ---- Go --------------------------------------------------------------------------------
go_bin=
for g in "$(command -v go || true)" /usr/local/go/bin/go; do
    [ -n "$g" ] && [ -x "$g" ] || continue
    v=$("$g" env GOVERSION 2>/dev/null | sed 's/^go//') || continue
    if ver_ge "$v" "$go_need"; then
        go_bin=$g
        break
    fi
done
if [ -z "$go_bin" ]; then
    gdir=$dir/go$GO_VERSION.linux-$arch
    if [ ! -x "$gdir/bin/go" ]; then
        mkdir -p "$dir"
        zip=$dir/go$GO_VERSION.linux-$arch.zip
        say "Go $go_need or newer is missing: installing Go $GO_VERSION ($arch) from the Go module proxy"
        fetch "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip" "$zip"
        check sha256 "$zip" "${GO_SHA256[$arch]}"
        rm -rf "$gdir.tmp"
        mkdir -p "$gdir.tmp"
        unzip -q "$zip" -d "$gdir.tmp"
        # The module zip holds the release under golang.org/toolchain@v0.0.1-go.../; the
        # proxy's zips drop file modes, so the tools are made executable again.
        mv "$gdir.tmp"/golang.org/toolchain@*/* "$gdir.tmp/" && rm -rf "$gdir.tmp/golang.org"
        chmod -R a+rX "$gdir.tmp"
        find "$gdir.tmp/bin" "$gdir.tmp/pkg/tool" -type f -exec chmod a+x {} +
        rm -rf "$gdir" && mv "$gdir.tmp" "$gdir"
        rm -f "$zip"
        "$gdir/bin/go" version >&2 || die "the installed Go does not run"
    fi
    path+=("$gdir/bin")
else
    path+=("$(dirname "$go_bin")")
fi

# ---- Node.js and npm ---------------------------------------------------------------------
node_ok=
if command -v node >/dev/null && command -v npm >/dev/null; then
    v=$(node --version 2>/dev/null | sed 's/^v//')
    [ -n "$v" ] && ver_ge "$v" "$node_need" && node_ok=1
fi
if [ -z "$node_ok" ]; then
    ndir=$dir/node-v$NODE_VERSION-linux-$node_arch
    if [ ! -x "$ndir/bin/node" ] || [ ! -x "$ndir/bin/npm" ]; then
        mkdir -p "$dir"
        tgz=$dir/node-linux-$node_arch-$NODE_VERSION.tgz
        say "Node.js $node_need or newer with npm is missing: installing Node.js $NODE_VERSION and npm $NPM_VERSION from the npm registry"
        fetch "https://registry.npmjs.org/node-linux-$node_arch/-/node-linux-$node_arch-$NODE_VERSION.tgz" "$tgz"
        check sha512 "$tgz" "${NODE_SHA512[$node_arch]}"
        npm_tgz=$dir/npm-$NPM_VERSION.tgz
        fetch "https://registry.npmjs.org/npm/-/npm-$NPM_VERSION.tgz" "$npm_tgz"
        check sha512 "$npm_tgz" "$NPM_SHA512"
        rm -rf "$ndir.tmp"
        mkdir -p "$ndir.tmp/lib/node_modules/npm"
        tar -xzf "$tgz" -C "$ndir.tmp" --strip-components=1
        tar -xzf "$npm_tgz" -C "$ndir.tmp/lib/node_modules/npm" --strip-components=1
        # npm and npx as the release lays them out: scripts that run npm's own CLI.
        for t in npm npx; do
            printf '#!/bin/sh\nexec "$(dirname "$0")/node" "$(dirname "$0")/../lib/node_modules/npm/bin/%s-cli.js" "$@"\n' \
                "$t" >"$ndir.tmp/bin/$t"
            chmod a+x "$ndir.tmp/bin/$t"
        done
        rm -rf "$ndir" && mv "$ndir.tmp" "$ndir"
        rm -f "$tgz" "$npm_tgz"
        "$ndir/bin/node" --version >&2 && "$ndir/bin/npm" --version >&2 ||
            die "the installed Node.js or npm does not run"
    fi
    path+=("$ndir/bin")
fi

# ---- the PATH -----------------------------------------------------------------------------
printf 'export PATH=%q\n' "$(IFS=:; echo "${path[*]}"):$PATH"
