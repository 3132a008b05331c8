#!/usr/bin/env bash
# Builds the controller (and, with --unit, its unit tests) for another Linux
# architecture with Debian's cross toolchain and multiarch libraries.
#
#   packaging/cross.sh ARCH [--unit] [--install-only]      ARCH: amd64 | arm64
#
# Output: build/ARCH/bin/pgtoken-rotator (and build/ARCH/tests/unit/*/test_*).
# On a machine of that architecture it is a plain build into build/ARCH.
#
# What it needs, installed with apt as root when missing (after `dpkg
# --add-architecture ARCH` and `apt-get update`): crossbuild-essential-ARCH, the
# -dev packages of the controller's libraries for ARCH, libpq5:ARCH, and
# qemu-user-static (to run what was built).
# libpq-dev is not Multi-Arch: same in Debian 12, so it cannot be installed for
# two architectures at once: the headers come from the machine's own libpq-dev
# (they do not depend on the architecture; pg_config_ext.h's int64 is "long int"
# on both) and the library from libpq5:ARCH, through a libpq.pc written under
# build/ARCH/pkgconfig.
#
# Exit status: 0 built; 1 failed; 3 cannot build here (a "SKIP: why" line says why).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
arch=${1:-}
shift || true
unit=0
install_only=0
for a in "$@"; do
    case $a in
    --unit) unit=1 ;;
    --install-only) install_only=1 ;;
    *) echo "usage: $0 amd64|arm64 [--unit] [--install-only]" >&2; exit 2 ;;
    esac
done
case $arch in
amd64) triplet=x86_64-linux-gnu ;;
arm64) triplet=aarch64-linux-gnu ;;
*) echo "usage: $0 amd64|arm64 [--unit] [--install-only]" >&2; exit 2 ;;
esac
skip() {
    echo "SKIP: cross $arch: $*"
    exit 3
}
host=$(dpkg --print-architecture 2>/dev/null) || skip "not a Debian system (no dpkg)"
out=build/$arch
mkdir -p "$out"
log=$out/cross-apt.log

# --- packages ----------------------------------------------------------------------
libs="libcjson-dev libyaml-dev libssl-dev"
pkgs=()
qemu=qemu-${triplet%%-*}-static # what runs the binaries here (tests/suites/cross-arm64.sh)
if [ "$arch" != "$host" ]; then
    command -v "$triplet-gcc" >/dev/null || pkgs+=("crossbuild-essential-$arch")
    command -v "$qemu" >/dev/null || pkgs+=(qemu-user-static)
    for p in $libs libpq5; do
        dpkg -s "$p:$arch" >/dev/null 2>&1 || pkgs+=("$p:$arch")
    done
fi
if [ ${#pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || skip "missing ${pkgs[*]} and not root"
    echo "cross $arch: installing ${pkgs[*]} (log: $log)"
    {
        dpkg --print-foreign-architectures | grep -qx "$arch" || dpkg --add-architecture "$arch"
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
    } >"$log" 2>&1 || skip "apt-get could not install ${pkgs[*]}: $(tail -n 1 "$log")"
fi
[ "$install_only" = 1 ] && exit 0

# --- build -------------------------------------------------------------------------
vars=(BUILD="$out")
if [ "$arch" != "$host" ]; then
    libdir=/usr/lib/$triplet
    [ -e "$libdir/libpq.so.5" ] || skip "no $libdir/libpq.so.5 (libpq5:$arch)"
    [ -f /usr/include/postgresql/libpq-fe.h ] || skip "no libpq headers (libpq-dev)"
    mkdir -p "$out/pkgconfig"
    cat >"$out/pkgconfig/libpq.pc" <<EOF
# Written by packaging/cross.sh: libpq-dev cannot be installed for $arch beside the
# machine's own, so this points at the machine's headers and libpq5:$arch's library.
includedir=/usr/include/postgresql
libdir=$libdir
Name: libpq
Description: PostgreSQL client library ($arch)
Version: $(sed -n 's/^#define PG_MAJORVERSION "\(.*\)"/\1/p' /usr/include/postgresql/pg_config.h 2>/dev/null || echo 15)
Cflags: -I\${includedir}
Libs: \${libdir}/libpq.so.5
EOF
    vars+=(CC="$triplet-gcc"
        PKG_CONFIG="env PKG_CONFIG_LIBDIR=$PWD/$out/pkgconfig:$libdir/pkgconfig:/usr/share/pkgconfig pkg-config")
fi
jobs=$(nproc 2>/dev/null || echo 2)
make -s -j"$jobs" "${vars[@]}" all || exit 1
if [ "$unit" = 1 ]; then
    make -s -j"$jobs" "${vars[@]}" unit-build || exit 1
fi
file -b "$out/bin/pgtoken-rotator" 2>/dev/null | sed "s/^/cross $arch: /" || true
