#!/usr/bin/env bash
# Builds the container image from source with the Dockerfile, offline, with
# Debian's podman, then runs it (the `docker build .` path; the release images
# come from packaging/image.sh).
#
#   tests/image/build.sh [--tag NAME] [--from-head]      (make image-source)
#
# The build context is the working tree (as `docker build .`); --from-head
# builds the last commit instead (`git archive HEAD`, with the working tree's
# Dockerfile and .dockerignore), e.g. while uncommitted work does not compile.
#
# No registry is reachable here, so the build stage's base image
# (docker.io/library/debian:bookworm; the image itself is FROM scratch) is made
# locally: `debootstrap --variant=minbase bookworm` from the Debian mirror apt
# uses, with apt's sources (security updates included) and slim's dpkg excludes,
# imported with `podman import`. The rootfs tarball is kept
# in .cache/image/ (PGTR_IMAGE_REBASE=1 makes it again). apt inside the build
# reaches the same mirror (chroot isolation shares the host's network).
# Podman runs with --storage-driver vfs, --runtime runc, --isolation chroot.
#
# Then `podman run --rm IMAGE version` must print the version, and the image's
# user must be 65532:65532 (the image has no `id` to ask).
#
# Exit status: 0 built and ran; 1 the build or the run failed; 3 podman cannot
# work on this machine (a line "SKIP: why" says what is missing).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
tag=ghcr.io/pgtoken-rotator/pgtoken-rotator:$(cat VERSION)
from_head=0
while [ $# -gt 0 ]; do
    case $1 in
    --tag) tag=$2; shift 2 ;;
    --from-head) from_head=1; shift ;;
    *) echo "usage: $0 [--tag NAME] [--from-head]" >&2; exit 2 ;;
    esac
done
base=docker.io/library/debian:bookworm
cache=$ROOT/.cache/image
log=$ROOT/build/image
mkdir -p "$cache" "$log"
podman=(podman --storage-driver vfs --runtime runc)
# The container's limits must not exceed this process's (podman's defaults do).
limits=(--ulimit "nofile=1024:1024" --ulimit "nproc=1024:1024")

skip() {
    echo "SKIP: image: $*"
    exit 3
}
fail() {
    echo "image: FAILED: $*" >&2
    exit 1
}
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
t_start=$(now)

# --- tools -------------------------------------------------------------------------
need=()
command -v podman >/dev/null || need+=(podman)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v runc >/dev/null || need+=(runc)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || skip "${need[*]} missing and not root (apt-get install podman debootstrap runc)"
    command -v apt-get >/dev/null || skip "${need[*]} missing and no apt-get"
    echo "image: installing ${need[*]}"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman debootstrap runc >"$log/apt.log" 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends podman debootstrap runc; } >>"$log/apt.log" 2>&1; }; then
        skip "could not install podman debootstrap runc (see $log/apt.log)"
    fi
fi
[ "$(id -u)" -eq 0 ] || skip "debootstrap and podman with vfs storage need root here"
"${podman[@]}" info >"$log/podman-info.log" 2>&1 ||
    skip "podman does not work here: $(tail -n 1 "$log/podman-info.log")"

# --- the base images ------------------------------------------------------------------
# The first Debian mirror apt uses (deb822 sources, else sources.list).
mirror() {
    local m
    m=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [ -n "$m" ] || m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
        /etc/apt/sources.list 2>/dev/null | head -n 1)
    echo "${m:-http://deb.debian.org/debian}"
}

make_base() {
    local rootfs=$cache/rootfs m t0
    m=$(mirror)
    t0=$(now)
    echo "image: debootstrap --variant=minbase bookworm from $m"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$m" >"$log/debootstrap.log" 2>&1 ||
        { rm -rf "$rootfs"; skip "debootstrap failed (mirror $m): $(tail -n 1 "$log/debootstrap.log")"; }
    # apt in the image uses what the host's apt uses: the same mirror with
    # bookworm-updates and bookworm-security, as Debian's own images do.
    if ls /etc/apt/sources.list.d/debian.sources >/dev/null 2>&1; then
        rm -f "$rootfs/etc/apt/sources.list"
        cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
    fi
    # As debian:bookworm-slim: no docs, man pages or translations, no apt caches.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null
    rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* 2>/dev/null
    tar --numeric-owner -C "$rootfs" -cf "$cache/bookworm-minbase.tar.tmp" . || fail "tar of the rootfs"
    mv "$cache/bookworm-minbase.tar.tmp" "$cache/bookworm-minbase.tar" || fail "mv of the rootfs tarball"
    rm -rf "$rootfs"
    echo "image: base rootfs made in $(secs "$t0") s ($(du -h "$cache/bookworm-minbase.tar" | cut -f1))"
}

t0=$(now)
if [ "${PGTR_IMAGE_REBASE:-}" = 1 ] || ! "${podman[@]}" image exists "$base"; then
    if [ "${PGTR_IMAGE_REBASE:-}" = 1 ] || [ ! -s "$cache/bookworm-minbase.tar" ]; then
        make_base
    fi
    "${podman[@]}" import --quiet "$cache/bookworm-minbase.tar" "$base" >"$log/import.log" 2>&1 ||
        fail "podman import: $(tail -n 1 "$log/import.log")"
    echo "image: base image $base ready in $(secs "$t0") s"
fi

# --- build and run ------------------------------------------------------------------------
t0=$(now)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
context=$ROOT
if [ "$from_head" = 1 ]; then
    context=$(mktemp -d /tmp/pgtr-image-context.XXXXXX)
    trap 'rm -rf "$context"' EXIT
    git archive HEAD | tar -x -C "$context" || fail "git archive HEAD"
    cp Dockerfile .dockerignore "$context/"
fi
echo "image: podman build -t $tag from ${context} (log: $log/build.log)"
if ! "${podman[@]}" build --isolation chroot --pull=never --layers="${PGTR_IMAGE_LAYERS:-true}" \
    --build-arg VERSION="$(cat "$context/VERSION")" --build-arg GIT_REV="$rev" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$tag" -f "$context/Dockerfile" "$context" >"$log/build.log" 2>&1; then
    tail -n 20 "$log/build.log" >&2
    fail "podman build failed (the last lines are above; all of it in $log/build.log)"
fi
t_build=$(secs "$t0")
echo "image: built $tag in $t_build s ($("${podman[@]}" image inspect --format '{{.Size}}' "$tag" |
    awk '{ printf "%.0f MB", $1 / 1e6 }'))"

out=$("${podman[@]}" run --rm --network none "${limits[@]}" "$tag" version 2>&1) ||
    fail "podman run $tag version: $out"
[ "$out" = "pgtoken-rotator $(cat VERSION) ($rev)" ] ||
    fail "podman run $tag version printed '$out', want 'pgtoken-rotator $(cat VERSION) ($rev)'"
user=$("${podman[@]}" image inspect --format '{{.Config.User}}' "$tag")
[ "$user" = 65532:65532 ] || fail "the image's User is '$user', want 65532:65532"
echo "image: podman run --rm $tag version -> $out (user $user)"
echo "image: done in $(secs "$t_start") s (build $t_build s)"
