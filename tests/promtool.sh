#!/usr/bin/env bash
# promtool (Prometheus's rule checker and rule unit tester), from Debian 12's `prometheus`
# package, unpacked into .cache/toolchains/prometheus/ (ignored by git). The package is never
# installed: its postinst would start a Prometheus server on :9090. `apt-get download` fetches
# it through apt, which checks it against the signed package index.
#
#   tests/promtool.sh      prints the path of promtool, fetching it the first time
#
# Idempotent: the package is downloaded once. Needs apt-get and dpkg-deb (Debian); runs
# `apt-get update` (as root) only when apt does not know the package yet. Messages go to
# stderr; exit 1 with a message when promtool cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/.cache/toolchains/prometheus
bin=$dir/bin/promtool

say() { echo "promtool: $*" >&2; }

if [ ! -x "$bin" ]; then
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
        { say "needs apt-get and dpkg-deb (Debian 12)"; exit 1; }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    fetch() { (cd "$tmp" && apt-get download -q prometheus) >"$tmp/apt.log" 2>&1; }
    if ! fetch; then
        if [ "$(id -u)" -ne 0 ]; then
            say "apt-get download prometheus failed and, not being root, cannot run apt-get update: $(tail -n 1 "$tmp/apt.log")"
            exit 1
        fi
        say "apt-get update (apt does not know the prometheus package yet)"
        apt-get update -qq >&2
        fetch || { say "apt-get download prometheus: $(tail -n 1 "$tmp/apt.log")"; exit 1; }
    fi
    deb=$(ls "$tmp"/prometheus_*.deb)
    dpkg-deb -x "$deb" "$tmp/x"
    # Kept: promtool and the package's version. Renamed into place, so that two runs at
    # once never see half a directory.
    mkdir -p "$tmp/out/bin" "$(dirname "$dir")"
    cp "$tmp/x/usr/bin/promtool" "$tmp/out/bin/promtool"
    dpkg-deb -f "$deb" Version >"$tmp/out/VERSION"
    "$tmp/out/bin/promtool" --version >/dev/null ||
        { say "the unpacked promtool does not run"; exit 1; }
    if ! mv -T "$tmp/out" "$dir" 2>/dev/null && [ ! -x "$bin" ]; then
        say "cannot write $dir"
        exit 1
    fi
    say "promtool $(cat "$dir/VERSION") in $dir"
fi
echo "$bin"
