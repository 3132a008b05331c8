#!/usr/bin/env bash
# Lays out the container image's root filesystem for one architecture: the
# binary, the shared libraries it loads, the CA bundle, users, LICENSE, /tmp.
#
#   packaging/rootfs.sh BINARY ARCH OUTDIR        ARCH: amd64 | arm64
#   packaging/rootfs.sh --libs BINARY ARCH        print the libraries only
#
# OUTDIR is emptied first, then holds:
#   /usr/local/bin/pgtoken-rotator   BINARY, stripped (ARCH's strip)
#   every library BINARY loads and the dynamic loader, as ARCH's loader resolves
#     them on this machine (`ld.so --list`; through qemu-user when ARCH is not
#     this machine's), at the paths it reports, with each symlink on the way
#     made again (relative) so that sonames and /lib -> usr/lib resolve as on Debian
#   /etc/ssl/certs/ca-certificates.crt   this machine's bundle (ca-certificates)
#   /etc/passwd, /etc/group   root and nonroot (65532), no login shell
#   /usr/share/licenses/pgtoken-rotator/LICENSE, an empty /tmp (1777)
# Nothing else: no shell, no package manager. --libs prints the paths the
# loader reports (loader first), one per line, and copies nothing.
#
# What the libraries could load at run time that ld.so --list does not show, and
# why none of it is here (Debian 12):
#   glibc 2.36: NSS files and dns are inside libc; without /etc/nsswitch.conf
#     passwd and group are looked up in files, hosts in files then dns (checked
#     with getent in this rootfs). The runtime (kubelet, podman, Docker) mounts
#     /etc/hosts and /etc/resolv.conf. gconv modules: only for charsets other than
#     ASCII and UTF-8 (built in). libgcc_s.so.1, which glibc dlopens for
#     pthread_exit and pthread_cancel: neither the controller nor libpq calls
#     them; libldap's thread pool does, and a client never starts
#     it.
#   OpenSSL 3: no openssl.cnf is the defaults (Debian's file only comments on the
#     default provider, which loads implicitly; security level 2 is built in).
#     Engines and ossl-modules load only when a config names them.
#   libpq: the login check sets gssencmode=disable (lib/pg/login.c), so krb5
#     and GSSAPI load no plugin or mechanism; krb5.conf, pg_service.conf and
#     .pgpass may be absent; it looks up the home directory with getpwuid
#     (hence the passwd entry for 65532).
#   libsasl2 plugins (via libldap) load only for an LDAP SASL bind, p11-kit
#     modules (via GnuTLS, from libldap) only for PKCS#11 use.
#   The controller's HTTP client (lib/net/http.c): the CA bundle is named by
#     the config or is /etc/ssl/certs/ca-certificates.crt.
#
# With SOURCE_DATE_EPOCH set, every file, directory and symlink gets that mtime.
# Modes: directories 0755, /tmp 1777, files keep theirs without group/other write.
#
# Needs: readelf and strip (binutils; ARCH's cross binutils, e.g.
# binutils-aarch64-linux-gnu, for a foreign ARCH), ARCH's libraries installed
# (multiarch, e.g. libpq5:arm64), and qemu-user-static for a foreign ARCH.
# Exit status: 0 done; 1 failed (a line says why); 2 usage.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() {
    echo "usage: $0 BINARY amd64|arm64 OUTDIR" >&2
    echo "       $0 --libs BINARY amd64|arm64" >&2
    exit 2
}
libs_only=0
if [ "${1:-}" = --libs ]; then
    libs_only=1
    shift
    [ $# -eq 2 ] || usage
    set -- "$1" "$2" -
fi
[ $# -eq 3 ] || usage
bin=$1 arch=$2 out=$3
fail() {
    echo "rootfs $arch: $*" >&2
    exit 1
}
case $arch in
amd64) triplet=x86_64-linux-gnu machine='X86-64' qarch=x86_64 ;;
arm64) triplet=aarch64-linux-gnu machine='AArch64' qarch=aarch64 ;;
*) usage ;;
esac
case $(uname -m) in
x86_64) host=amd64 ;;
aarch64) host=arm64 ;;
*) host=$(uname -m) ;;
esac
[ -f "$bin" ] || fail "no binary $bin"
[ -n "$out" ] && [ "$out" != / ] || fail "refusing OUTDIR '$out'"

# --- tools: this machine's or the cross ones -------------------------------------------
if [ "$arch" = "$host" ]; then
    strip=strip readelf=readelf run=()
else
    strip=$triplet-strip readelf=$triplet-readelf
    qemu=$(command -v "qemu-$qarch-static" || command -v "qemu-$qarch") ||
        fail "no qemu-$qarch-static to run $arch's loader (apt-get install qemu-user-static)"
    run=("$qemu" -L /)
fi
command -v "$strip" >/dev/null || fail "no $strip (binutils for $arch)"
command -v "$readelf" >/dev/null || fail "no $readelf (binutils for $arch)"
"$readelf" -h "$bin" 2>/dev/null | grep -q "Machine:.*$machine" ||
    fail "$bin is not an $arch ELF binary ($(file -b "$bin" 2>/dev/null))"
interp=$("$readelf" -l "$bin" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
[ -n "$interp" ] || fail "$bin names no program interpreter (a static binary needs no rootfs.sh)"
[ -x "$interp" ] || fail "no $interp: $arch's libc6 is not installed here"

# --- what the binary loads -------------------------------------------------------------------
# ld.so --list prints "soname => /path (0x...)", "/path (0x...)" for the loader,
# "name (0x...)" for the vDSO, and "soname => not found" (or fails outright).
listing=$("${run[@]}" "$interp" --list "$bin" 2>&1) || fail "$interp --list $bin: $listing"
missing=$(grep 'not found' <<<"$listing")
[ -z "$missing" ] || fail "libraries not found here: $(echo "$missing" | awk '{ print $1 }' | tr '\n' ' ')"
libs=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing" | grep -vxF "$interp" | sort -u)
[ -n "$libs" ] || fail "$interp --list $bin printed no libraries: $listing"
if [ "$libs_only" = 1 ]; then
    printf '%s\n' "$interp" $libs
    exit 0
fi

# --- copying a path with the symlinks on its way ---------------------------------------
# place PATH: makes $out/PATH resolve inside $out as PATH does here: each symlink
# met (in the directories or at the end) is made again, relative, and followed.
place() {
    local p=$1 d t
    place_dir "$(dirname "$p")" || return 1
    d=$(realpath -e "$(dirname "$p")") || return 1
    p=${d%/}/$(basename "$p")
    [ -e "$out$p" ] || [ -L "$out$p" ] && return 0
    if [ -L "$p" ]; then
        t=$(readlink "$p")
        case $t in /*) ;; *) t=${d%/}/$t ;; esac
        ln -s "$(realpath -s -m --relative-to="$d" "$t")" "$out$p" || return 1
        place "$t"
    elif [ -d "$p" ]; then
        mkdir -p "$out$p"
    elif [ -f "$p" ]; then
        cp -p "$p" "$out$p"
    else
        echo "rootfs $arch: $p is not a file" >&2
        return 1
    fi
}
# place_dir DIR: every component of DIR that is a symlink here is one in $out.
place_dir() {
    local cur= c
    local -a comps
    IFS=/ read -ra comps <<<"${1#/}"
    for c in "${comps[@]}"; do
        [ -n "$c" ] || continue
        cur=$cur/$c
        if [ -L "$cur" ] && [ ! -L "$out$cur" ]; then
            place "$cur" || return 1
        fi
    done
    mkdir -p "$out$(realpath -e "$1")"
}

license=$here/../LICENSE
[ -f "$license" ] || fail "no LICENSE beside packaging/"
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || fail "no $ca (apt-get install ca-certificates)"
rm -rf "$out" && mkdir -p "$out" || fail "cannot make $out"
out=$(cd "$out" && pwd)

# --- the binary and its libraries ----------------------------------------------------------
install -D -m 0755 /dev/null "$out/usr/local/bin/pgtoken-rotator" &&
    "$strip" --strip-unneeded -o "$out/usr/local/bin/pgtoken-rotator" "$bin" ||
    fail "$strip $bin"
chmod 0755 "$out/usr/local/bin/pgtoken-rotator"
for l in "$interp" $libs; do
    place "$l" || fail "cannot copy $l"
done

# --- the rest -------------------------------------------------------------------------------
install -D -m 0644 "$ca" "$out/etc/ssl/certs/ca-certificates.crt" || fail "copy $ca"
install -D -m 0644 "$license" "$out/usr/share/licenses/pgtoken-rotator/LICENSE" || fail "copy LICENSE"
cat >"$out/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
EOF
cat >"$out/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
mkdir -p "$out/tmp"

# --- modes and times ------------------------------------------------------------------------
find "$out" -type d -exec chmod 0755 {} + &&
    find "$out" -type f -exec chmod go-w {} + &&
    chmod 1777 "$out/tmp" &&
    chmod 0644 "$out/etc/passwd" "$out/etc/group" ||
    fail "chmod"
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    find "$out" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + || fail "touch -d @$SOURCE_DATE_EPOCH"
fi
n=$(find "$out" -type f | wc -l)
bytes=$(find "$out" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
echo "rootfs $arch: $n files, $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }')) in $out"
