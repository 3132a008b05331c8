#!/usr/bin/env bash
# The release image, offline: one image per architecture from binaries already
# built here, both in one manifest list, written as an OCI archive.
#
#   packaging/image.sh [--amd64 BINARY] [--arm64 BINARY] [--out FILE] [--repo NAME] [--push DEST]
#   packaging/image.sh --check FILE
#   packaging/image.sh --podman ARGS...       podman with this script's storage
#
# --amd64/--arm64 BINARY: the binary for that architecture (the image holds both).
# By default build/bin/pgtoken-rotator (make all) for this machine's architecture
# and build/ARCH/bin/pgtoken-rotator (packaging/cross.sh ARCH) for the other one.
#
# For each ARCH, packaging/rootfs.sh lays out build/image/ARCH/rootfs, and podman
# builds it with the Dockerfile's last stage (FROM scratch, COPY, LABEL, USER: no
# RUN, so no emulation) for --platform linux/ARCH. The images go into one
# manifest list NAME:VERSION (NAME default ghcr.io/pgtoken-rotator/pgtoken-rotator),
# written to FILE (default dist/pgtoken-rotator-VERSION-image.oci.tar) as an OCI
# archive: its index.json names the list by VERSION (ref.name), the list names
# both images. --push DEST also copies the list with both images there
# (podman manifest push --all), e.g. docker://$ACR.azurecr.io/pgtoken-rotator:VERSION.
#
# VERSION and the revision label are what the binaries print (`version`), which
# must agree across architectures. The created label and every mtime in the
# layers are SOURCE_DATE_EPOCH, by default the commit time of that revision, and
# the archive is written with sorted names and fixed times: the same binaries
# give the same archive, byte for byte.
#
# --check FILE checks an archive (also done after writing one): one list, one
# image per ARCH (linux/ARCH), each with one layer whose digest matches, the
# OCI labels (title, description, source, version, revision, licenses,
# created), USER 65532:65532, the entrypoint and CMD of the Dockerfile. It
# prints "image: ARCH: N MB uncompressed, M MB compressed" per architecture.
#
# Podman runs as build.sh runs it (--storage-driver vfs, --runtime runc), with
# its storage under build/image/podman, made afresh each time; --podman runs
# podman on it (`--podman images`, `--podman run ...`). Missing tools (podman,
# runc, jq, qemu-user-static for a foreign ARCH) are installed with apt when
# root. Exit status: 0 done; 1 failed ("image: FAILED: why"); 2 usage; 3 podman
# cannot work here ("SKIP: why").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
usage() {
    echo "usage: $0 [--amd64 BINARY] [--arm64 BINARY] [--out FILE] [--repo NAME] [--push DEST]" >&2
    echo "       $0 --check FILE" >&2
    echo "       $0 --podman ARGS..." >&2
    exit 2
}
skip() {
    echo "SKIP: image: $*"
    exit 3
}
fail() {
    echo "image: FAILED: $*" >&2
    exit 1
}
case $(uname -m) in
x86_64) host=amd64 ;;
aarch64) host=arm64 ;;
*) host=$(uname -m) ;;
esac
qemu_of() { case $1 in amd64) echo qemu-x86_64-static ;; arm64) echo qemu-aarch64-static ;; esac; }

work=$ROOT/build/image
pod=$work/podman
podman=(podman --storage-driver vfs --runtime runc --root "$pod/storage" --runroot "$pod/run"
    --tmpdir "$pod/libpod" --events-backend none)
if [ "${1:-}" = --podman ]; then
    shift
    mkdir -p "$pod/tmp" || exit 1
    TMPDIR=$pod/tmp exec "${podman[@]}" "$@"
fi

out= repo=ghcr.io/pgtoken-rotator/pgtoken-rotator push= check=
arches=(amd64 arm64)
declare -A bins=()
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
    --amd64) bins[amd64]=$2 ;;
    --arm64) bins[arm64]=$2 ;;
    --out) out=$2 ;;
    --repo) repo=$2 ;;
    --push) push=$2 ;;
    --check) check=$2 ;;
    *) usage ;;
    esac
    shift 2
done

mkdir -p "$work"

# --- checking an archive -------------------------------------------------------------------
# check_archive FILE VERSION REVISION CREATED: the wanted label values, empty = any.
check_archive() {
    local file=$1 want_version=$2 want_rev=$3 want_created=$4 dir idx n ref list have want
    local a digest m cfg got layer size msg=
    dir=$work/check
    rm -rf "$dir" && mkdir -p "$dir" && tar -xf "$file" -C "$dir" || fail "cannot extract $file"
    blob() { echo "$dir/blobs/${1/://}"; }
    [ "$(jq -r .imageLayoutVersion "$dir/oci-layout" 2>/dev/null)" = 1.0.0 ] || fail "$file: not an OCI layout"
    idx=$dir/index.json
    n=$(jq '.manifests | length' "$idx")
    [ "$n" = 1 ] || fail "$file: index.json names $n manifests, want one list"
    got=$(jq -r '.manifests[0].mediaType' "$idx")
    [ "$got" = application/vnd.oci.image.index.v1+json ] || fail "$file: index.json names a $got, not an image index"
    ref=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // ""' "$idx")
    [ -z "$want_version" ] || [ "$ref" = "$want_version" ] || msg+="the list's ref.name is '$ref', want '$want_version'; "
    list=$(blob "$(jq -r '.manifests[0].digest' "$idx")")
    [ -f "$list" ] || fail "$file: the list's blob is missing"
    # Every blob is what its name says.
    (cd "$dir/blobs/sha256" && for b in *; do echo "$b  $b"; done | sha256sum -c --quiet -) >/dev/null 2>&1 ||
        fail "$file: a blob's content does not match its digest"
    have=$(jq -r '.manifests[] | "\(.platform.os)/\(.platform.architecture)"' "$list" | sort | paste -sd ' ')
    want=$(printf 'linux/%s\n' "${arches[@]}" | paste -sd ' ')
    [ "$have" = "$want" ] || fail "$file: the list has ${have:-no images}, want $want"
    for a in "${arches[@]}"; do
        digest=$(jq -r --arg a "$a" '.manifests[] | select(.platform.architecture == $a) | .digest' "$list")
        m=$(blob "$digest")
        [ "$(jq -r .mediaType "$m")" = application/vnd.oci.image.manifest.v1+json ] || msg+="$a: not an OCI image manifest; "
        cfg=$(blob "$(jq -r .config.digest "$m")")
        n=$(jq '.layers | length' "$m")
        [ "$n" = 1 ] || msg+="$a: $n layers, want 1 (COPY of the rootfs); "
        layer=$(blob "$(jq -r '.layers[0].digest' "$m")")
        is() { # JQ-FILTER WANT: the config's value
            got=$(jq -c "$1" "$cfg")
            [ "$got" = "$2" ] || msg+="$a: the config's $1 is $got, want $2; "
        }
        is .os '"linux"'
        is .architecture "\"$a\""
        is .config.User '"65532:65532"'
        is .config.Entrypoint '["/usr/local/bin/pgtoken-rotator"]'
        is .config.Cmd '["run"]'
        for l in title description source version revision licenses created; do
            got=$(jq -r --arg l "org.opencontainers.image.$l" '.config.Labels[$l] // ""' "$cfg")
            [ -n "$got" ] && [ "$got" != unknown ] || msg+="$a: no label org.opencontainers.image.$l; "
        done
        label_is() { # NAME WANT (empty: any)
            got=$(jq -r --arg l "org.opencontainers.image.$1" '.config.Labels[$l] // ""' "$cfg")
            [ -z "$2" ] || [ "$got" = "$2" ] || msg+="$a: label $1 is '$got', want '$2'; "
        }
        label_is version "$want_version"
        label_is revision "$want_rev"
        label_is created "$want_created"
        label_is licenses Apache-2.0
        size=$(gzip -dc "$layer" | wc -c) || msg+="$a: the layer does not decompress; "
        echo "image: $a: $(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1e6 }') MB uncompressed," \
            "$(awk -v b="$(stat -c %s "$layer")" 'BEGIN { printf "%.1f", b / 1e6 }') MB compressed" \
            "($size bytes; manifest $digest)"
        echo "image: $a: layer $layer"
    done
    [ -z "$msg" ] || fail "$file: $msg"
    echo "image: checked $file: one list of $want, labels, USER 65532:65532"
}

if [ -n "$check" ]; then
    command -v jq >/dev/null || fail "jq is needed (apt-get install jq)"
    [ -f "$check" ] || fail "no archive $check"
    check_archive "$check" "" "" ""
    exit 0
fi

# --- tools -----------------------------------------------------------------------------------
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v jq >/dev/null || need+=(jq)
for a in "${arches[@]}"; do
    [ "$a" = "$host" ] || command -v "$(qemu_of "$a")" >/dev/null || need+=(qemu-user-static)
done
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || skip "${need[*]} missing and not root (apt-get install ${need[*]})"
    command -v apt-get >/dev/null || skip "${need[*]} missing and no apt-get"
    echo "image: installing ${need[*]}"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >"$work/apt.log" 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${need[@]}"; } >>"$work/apt.log" 2>&1; }; then
        skip "could not install ${need[*]} (see $work/apt.log)"
    fi
fi
[ "$(id -u)" -eq 0 ] || skip "podman with vfs storage needs root here"
rm -rf "$pod" && mkdir -p "$pod/tmp" || fail "cannot make $pod"
export TMPDIR=$pod/tmp
"${podman[@]}" info >"$work/podman-info.log" 2>&1 ||
    skip "podman does not work here: $(tail -n 1 "$work/podman-info.log")"

# --- the binaries: which, and what they say they are -----------------------------------------
version= rev=
for a in "${arches[@]}"; do
    if [ -z "${bins[$a]:-}" ]; then
        if [ "$a" = "$host" ]; then bins[$a]=build/bin/pgtoken-rotator; else bins[$a]=build/$a/bin/pgtoken-rotator; fi
    fi
    b=${bins[$a]}
    [ -f "$b" ] || fail "no $a binary $b (make all; packaging/cross.sh $a)"
    if [ "$a" = "$host" ]; then
        said=$("$b" version 2>&1)
    else
        said=$("$(qemu_of "$a")" -L / "$b" version 2>&1)
    fi
    [[ $said =~ ^pgtoken-rotator\ ([^ ]+)\ \(([^\)]+)\)$ ]] || fail "$b version printed '$said'"
    if [ -z "$version" ]; then
        version=${BASH_REMATCH[1]} rev=${BASH_REMATCH[2]}
    elif [ "$version ($rev)" != "${BASH_REMATCH[1]} (${BASH_REMATCH[2]})" ]; then
        fail "the binaries differ: ${arches[0]} is $version ($rev), $a is" \
            "${BASH_REMATCH[1]} (${BASH_REMATCH[2]}): build both again"
    fi
    echo "image: $a: $b ($said)"
done
[ "$version" = "$(cat VERSION)" ] || echo "image: note: the binaries are $version, VERSION says $(cat VERSION)"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct "$rev" 2>/dev/null) || SOURCE_DATE_EPOCH=
    [ -n "$SOURCE_DATE_EPOCH" ] || SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
[ -n "$out" ] || out=dist/pgtoken-rotator-$version-image.oci.tar
mkdir -p "$(dirname "$out")" || fail "cannot make $(dirname "$out")"

# --- the Containerfile: the Dockerfile's last stage, copying a prepared rootfs ---------------
cf=$work/Containerfile
awk '/^FROM /{ n++ } { line[NR] = $0; stage[NR] = n } END { for (i = 1; i <= NR; i++) if (stage[i] == n) print line[i] }' \
    Dockerfile | sed 's|^COPY --from=build /rootfs /$|COPY rootfs /|' >"$cf"
[ "$(head -n 1 "$cf")" = "FROM scratch" ] || fail "the Dockerfile's last stage is not FROM scratch"
grep -qx 'COPY rootfs /' "$cf" || fail "the Dockerfile's last stage has no 'COPY --from=build /rootfs /'"
! grep -qE '^(RUN|ADD|COPY --from)' "$cf" || fail "the Dockerfile's last stage does more than COPY the rootfs: $cf"

# --- rootfs and image per architecture, the list, the archive --------------------------------
list=$repo:$version
"${podman[@]}" manifest create "$list" >/dev/null || fail "podman manifest create $list"
for a in "${arches[@]}"; do
    packaging/rootfs.sh "${bins[$a]}" "$a" "$work/$a/rootfs" || fail "rootfs.sh for $a"
    log=$work/$a/build.log
    "${podman[@]}" build --pull=never --isolation chroot --format oci --platform "linux/$a" \
        --timestamp "$SOURCE_DATE_EPOCH" --build-arg VERSION="$version" --build-arg GIT_REV="$rev" \
        --build-arg CREATED="$created" -f "$cf" -t "$repo:$version-$a" "$work/$a" >"$log" 2>&1 ||
        { tail -n 5 "$log" >&2; fail "podman build for $a (log: $log)"; }
    "${podman[@]}" manifest add "$list" "containers-storage:$repo:$version-$a" >/dev/null ||
        fail "podman manifest add $list $a"
    echo "image: $a: built $repo:$version-$a"
done
layout=$work/oci
rm -rf "$layout"
"${podman[@]}" manifest push --all --format oci "$list" "oci:$layout:$version" >"$work/push.log" 2>&1 ||
    fail "podman manifest push to $layout: $(tail -n 1 "$work/push.log")"
# As an oci-archive (index.json, oci-layout, blobs/ at the top), but reproducible.
tar -C "$layout" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -cf "$out.tmp" oci-layout index.json blobs && mv "$out.tmp" "$out" || fail "tar $out"
echo "image: wrote $out ($(stat -c %s "$out") bytes, sha256 $(sha256sum "$out" | cut -c1-64))"
check_archive "$out" "$version" "$rev" "$created"
if [ -n "$push" ]; then
    "${podman[@]}" manifest push --all --format oci "$list" "$push" || fail "podman manifest push to $push"
    echo "image: pushed $list to $push"
fi
