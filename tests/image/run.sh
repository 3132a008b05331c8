#!/usr/bin/env bash
# The image suite.
#
#   tests/image/run.sh
#
# 1. The Dockerfile's structure, in well under a second: a build stage on Debian 12
#    running the project's make and packaging/rootfs.sh, and a FROM scratch image
#    that only copies that rootfs, with its labels, user and entrypoint.
# 2. Where podman works (installed with apt as root when missing; else SKIP lines):
#    packaging/image.sh builds the release archive from this tree's binaries
#    (build/bin from make, build/arm64/bin from packaging/cross.sh arm64, both
#    brought up to date here), twice, which must give the same bytes. Then, in each architecture's
#    image as the archive holds it: no shell, apt or dpkg; only the binary, the
#    libraries it loads, the CA bundle, passwd/group and LICENSE; the loader resolves
#    every library inside the image alone; `version` and `check --help` run as the
#    image's user (65532); a token request over TLS reaches a local server and fails
#    only on its self-signed certificate (OpenSSL and the CA bundle work). arm64 runs
#    inside its image through qemu-user-static, mounted as the entrypoint (no binfmt).
#    Each image's uncompressed size must be under a third of the Debian image's and
#    match what README.md states (5%).
# 3. With PGTR_IMAGE_BUILD=1, also tests/image/build.sh: the Dockerfile built from
#    source (debootstraps the Debian 12 build image; minutes with vfs storage).
#
# Prints TAP lines ("ok - NAME", "not ok - NAME: WHY", "--- SKIP: NAME (WHY)")
# and exits 1 when one fails. Writes only under build/image/.
# Package lists are split into words on purpose; Dockerfile text is matched literally.
# shellcheck disable=SC2086,SC2046,SC2005,SC2116,SC2016
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
failed=0
ok() { echo "ok - $1"; }
not_ok() {
    echo "not ok - $1: $2"
    failed=1
}
check() { # NAME CONDITION-MESSAGE: empty message = ok
    if [ -z "$2" ]; then ok "$1"; else not_ok "$1" "$2"; fi
}
skip() { echo "--- SKIP: $1 ($2)"; } # counted as skipped by tests/run, not as passed

# The Debian 12 slim image this one replaced, as tests/image/build.sh built it from
# the Dockerfile of 4702be4 (podman image inspect Size, linux/amd64): 93.6 MB.
OLD_IMAGE_BYTES=93627101

df=Dockerfile
[ -f "$df" ] || { not_ok "Dockerfile exists" "no $df"; exit 1; }
# Instructions with their continuation lines joined, comments dropped.
joined=$(sed -e '/^\s*#/d' "$df" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta')
stage() { # N: the instructions of stage N (1-based)
    awk -v n="$1" '/^FROM /{ s++ } s == n' <<<"$joined"
}
apt_pkgs() { # the packages an instruction list installs with apt-get install
    grep -o 'apt-get install[^&]*' | tr ' ' '\n' | grep -vE '^(apt-get|install|-y|--no-install-recommends|)$' |
        grep -v '^-' | sort -u
}

# --- stages and bases ----------------------------------------------------------------
msg=
[ "$(grep -c '^FROM ' <<<"$joined")" = 2 ] || msg+="want 2 stages; "
grep -q '^ARG BUILD_IMAGE=docker.io/library/debian:bookworm$' <<<"$joined" || msg+="BUILD_IMAGE is not debian:bookworm; "
grep -q '^FROM ${BUILD_IMAGE} AS build$' <<<"$joined" || msg+="no 'FROM \${BUILD_IMAGE} AS build'; "
[ "$(grep '^FROM ' <<<"$joined" | tail -n 1)" = 'FROM scratch' ] || msg+="the last stage is not FROM scratch; "
check "Dockerfile: builds on debian:bookworm, the image is FROM scratch (two stages)" "$msg"

# --- build stage: the project's make, the -dev packages of tests/deps.sh, rootfs.sh --------
build=$(stage 1)
want=$(sed -n 's/#.*the controller.*//p' tests/deps.sh | tr ' ' '\n' | grep -v '^$' | sort -u)
have=$(apt_pkgs <<<"$build")
# And the -dev packages of the pkg-config modules the Makefile links (PKGS).
mods=$(make -s --no-print-directory --eval 'pgtr-print-pkgs: ; @echo $(PKGS)' pgtr-print-pkgs 2>/dev/null)
msg=
for m in $mods; do
    pc=$(pkg-config --variable=pcfiledir "$m" 2>/dev/null)/$m.pc
    pkg=$(dpkg -S "$pc" 2>/dev/null | head -n 1 | cut -d: -f1)
    if [ -n "$pkg" ]; then want+=" $pkg"; else msg+="no package found for pkg-config module $m; "; fi
done
missing=$(comm -23 <(printf '%s\n' $want build-essential pkg-config ca-certificates | sort -u) <(printf '%s\n' $have))
[ -n "$want" ] || msg+="no '# the controller' line in tests/deps.sh; "
[ -z "$missing" ] || msg+="the build stage does not install: $(echo $missing); "
grep -qE '^RUN make .*all' <<<"$build" || msg+="the build stage does not run the project's make; "
grep -qE 'packaging/rootfs\.sh build/bin/pgtoken-rotator .* /rootfs$' <<<"$build" ||
    msg+="the build stage does not lay out /rootfs with packaging/rootfs.sh; "
check "Dockerfile: the build stage installs the -dev packages of tests/deps.sh, the Makefile's PKGS and ca-certificates, runs make and packaging/rootfs.sh" "$msg"

# --- the image: the rootfs only, non-root, entrypoint, labels ------------------------------
run=$(stage 2)
msg=
# ENV: plain settings only (a name and a literal value), as the image's GNUTLS_NO_IMPLICIT_INIT.
other=$(grep -vE '^(FROM scratch|COPY --from=build /rootfs /|ARG [A-Z_]+(=.*)?|LABEL .*|USER .*|ENTRYPOINT .*|CMD .*|ENV [A-Z_]+=[A-Za-z0-9_./:-]+)$' <<<"$run")
[ -z "$other" ] || msg+="it also has: $(echo $other); "
[ "$(grep -c '^COPY ' <<<"$run")" = 1 ] || msg+="want one COPY; "
check "Dockerfile: the image stage copies the build stage's /rootfs and nothing else (no RUN, no shell)" "$msg"

msg=
grep -q '^USER 65532:65532$' <<<"$run" || msg+="not USER 65532:65532; "
grep -q '^ENTRYPOINT \["/usr/local/bin/pgtoken-rotator"\]$' <<<"$run" || msg+="ENTRYPOINT is not the binary; "
grep -q '^CMD \["run"\]$' <<<"$run" || msg+='CMD is not ["run"]; '
for l in title description source version revision licenses created; do
    grep -q "org.opencontainers.image.$l=" <<<"$run" || msg+="no OCI label $l; "
done
for l in version=VERSION revision=GIT_REV created=CREATED; do
    grep -q "org.opencontainers.image.${l%=*}=\"\${${l#*=}}\"" <<<"$run" || msg+="label ${l%=*} is not from ARG ${l#*=}; "
    grep -q "^ARG ${l#*=}\(=\|$\)" <<<"$run" || msg+="no ARG ${l#*=} in the image stage; "
done
grep -q 'org.opencontainers.image.licenses="Apache-2.0"' <<<"$run" && head -n 3 LICENSE | grep -q 'Apache License' ||
    msg+="the licenses label is not Apache-2.0 or LICENSE is not the Apache License; "
grep -q '/usr/share/licenses/pgtoken-rotator/LICENSE' packaging/rootfs.sh || msg+="packaging/rootfs.sh does not copy LICENSE; "
check "Dockerfile: runs as UID 65532, ENTRYPOINT the binary, CMD [\"run\"], OCI labels (created, version, revision from build args)" "$msg"

msg=
[ "$(sed -e '/^#/d' -e '/^$/d' .dockerignore 2>/dev/null | head -n 1)" = '*' ] ||
    msg+=".dockerignore does not start by excluding everything; "
for p in .git build .cache node_modules; do
    grep -qx "!$p.*" .dockerignore 2>/dev/null && msg+="$p is let into the context; "
done
for p in Makefile VERSION LICENSE '*.mk' lib/ cmd/ packaging/; do
    grep -qxF "!$p" .dockerignore 2>/dev/null || msg+="$p is not let into the context; "
done
check ".dockerignore: the context is what the build reads (Makefile, *.mk, VERSION, LICENSE, lib/, cmd/, packaging/), no .git, build/, .cache/, node_modules/" "$msg"

# --- the release archive, and each image inside it ----------------------------------------
work=build/image
mkdir -p "$work"
podman_() { packaging/image.sh --podman "$@"; }
limits=(--ulimit "nofile=1024:1024" --ulimit "nproc=1024:1024")
case $(uname -m) in x86_64) host=amd64 ;; aarch64) host=arm64 ;; *) host=$(uname -m) ;; esac
loader_of() { case $1 in amd64) echo /lib64/ld-linux-x86-64.so.2 ;; arm64) echo /lib/ld-linux-aarch64.so.1 ;; esac; }
qemu_of() { case $1 in amd64) echo qemu-x86_64-static ;; arm64) echo qemu-aarch64-static ;; esac; }

# in_image ARCH REF [PODMAN-RUN-FLAGS...] -- CMD...: runs CMD in the image (its user, no
# network unless the flags say so); a foreign ARCH through qemu-user, mounted as /qemu.
in_image() {
    local a=$1 ref=$2 flags=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
    shift
    if [ "$a" = "$host" ]; then
        podman_ run --rm --pull=never --platform "linux/$a" "${limits[@]}" "${flags[@]}" \
            --entrypoint "$1" "$ref" "${@:2}"
    else
        podman_ run --rm --pull=never --platform "linux/$a" "${limits[@]}" "${flags[@]}" \
            -v "$(command -v "$(qemu_of "$a")"):/qemu:ro" --entrypoint /qemu "$ref" "$@"
    fi
}
# resolves ARCH REF [FLAGS...]: the loader, inside the image, lists every library of the
# binary; prints the paths; fails (with the loader's words) when one is missing.
resolves() {
    local a=$1 ref=$2 out
    shift 2
    out=$(in_image "$a" "$ref" --network none "$@" -- "$(loader_of "$a")" --list \
        /usr/local/bin/pgtoken-rotator 2>&1) || { echo "$out" | grep -v '^WARNING' | tail -n 2; return 1; }
    grep -q 'not found' <<<"$out" && { grep 'not found' <<<"$out"; return 1; }
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out" | sort -u
}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

dynamic() {
    local t0 out out2 rc a archive=$work/pgtoken-rotator-test-image.oci.tar
    # The binaries of this tree, brought up to date (no-ops after the test command's build
    # and cross-arm64 suite): the other architecture's with packaging/cross.sh, then this
    # machine's with make (last, as it also points bin/ at this machine's binary).
    for a in amd64 arm64; do
        [ "$a" = "$host" ] && continue
        out=$(packaging/cross.sh "$a" 2>&1)
        rc=$?
        [ $rc -eq 3 ] && { skip "image: the release archive and its images" "$(grep -m1 '^SKIP' <<<"$out")"; return; }
        [ $rc -eq 0 ] || { not_ok "image: the $a binary" "packaging/cross.sh $a failed: $(tail -n 2 <<<"$out")"; return; }
    done
    out=$(make -s -j2 all 2>&1) || { not_ok "image: this machine's binary" "make all failed: $(tail -n 2 <<<"$out")"; return; }

    t0=$(date +%s)
    out=$(packaging/image.sh --out "$archive" 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed 's/^/# /'
    case $rc in
    0) ok "image: packaging/image.sh writes one OCI archive, an index of linux/amd64 and linux/arm64, labels and USER 65532:65532 checked ($(($(date +%s) - t0)) s)" ;;
    3) skip "image: the release archive and its images" "$(grep -m1 '^SKIP:' <<<"$out" | sed 's/^SKIP: //')"; return ;;
    *) not_ok "image: packaging/image.sh" "$(grep -m1 'FAILED' <<<"$out")"; return ;;
    esac
    local first_sha rev how
    first_sha=$(sha256sum "$archive" | cut -c1-64)
    declare -A layer=() size=() csize=() ref=()
    for a in amd64 arm64; do
        layer[$a]=$(sed -n "s/^image: $a: layer //p" <<<"$out")
        ref[$a]=$(sed -n "s/^image: $a: built //p" <<<"$out")
        size[$a]=$(sed -n "s/^image: $a: .*(\([0-9]*\) bytes;.*/\1/p" <<<"$out")
        csize[$a]=$(stat -c %s "${layer[$a]}" 2>/dev/null || echo 0)
    done

    # The same binaries again: the same bytes.
    out2=$(packaging/image.sh --out "$work/pgtoken-rotator-test-image-2.oci.tar" 2>&1)
    if [ $? -eq 0 ] && [ "$(sha256sum "$work/pgtoken-rotator-test-image-2.oci.tar" | cut -c1-64)" = "$first_sha" ]; then
        ok "image: built twice from the same binaries, the archive is the same bytes (sha256 ${first_sha:0:12})"
    else
        not_ok "image: reproducible archive" "a second build differs: $(grep -m1 -E 'FAILED|wrote' <<<"$out2")"
    fi
    rm -f "$work/pgtoken-rotator-test-image-2.oci.tar"

    for a in amd64 arm64; do
        local dir=$work/layer-$a libs msg files want extra gone v h stated
        rm -rf "$dir" && mkdir -p "$dir"
        if [ -z "${layer[$a]}" ] || ! tar -xzf "${layer[$a]}" -C "$dir"; then
            not_ok "image $a: its layer" "cannot extract '${layer[$a]}'"
            continue
        fi
        # Nothing to run but the binary.
        msg=
        for p in bin/sh usr/bin/sh bin/bash bin/busybox usr/bin/apt usr/bin/apt-get usr/bin/dpkg var/lib/dpkg; do
            [ -e "$dir/$p" ] || [ -L "$dir/$p" ] && msg+="has /$p; "
        done
        extra=$(find "$dir" \( -name 'sh' -o -name '*bash*' -o -name 'busybox' -o -name 'apt*' -o -name 'dpkg*' \) -printf '/%P ')
        [ -z "$extra" ] || msg+="has $extra; "
        check "image $a: no shell, no apt, no dpkg" "$msg"

        # Every library resolves inside the image alone.
        if libs=$(resolves "$a" "${ref[$a]}"); then
            how=natively
            [ "$a" = "$host" ] || how="under $(qemu_of "$a")"
            ok "image $a: the loader resolves every library of the binary inside the image alone, none missing ($(wc -l <<<"$libs") with itself; run $how)"
        else
            not_ok "image $a: the binary's libraries inside the image" "$libs"
            libs=
        fi
        # And nothing else is there: every file is the binary, a library it loads,
        # the CA bundle, passwd, group or LICENSE.
        if [ -n "$libs" ]; then
            files=$(cd "$dir" && find . -type f -printf '/%P\n' | sort)
            want=$( (printf '%s\n' /usr/local/bin/pgtoken-rotator /etc/ssl/certs/ca-certificates.crt \
                /etc/passwd /etc/group /usr/share/licenses/pgtoken-rotator/LICENSE
                for l in $libs; do realpath -e "$dir$l" | sed "s|^$(realpath "$dir")||"; done) | sort -u)
            extra=$(comm -23 <(echo "$files") <(echo "$want"))
            gone=$(comm -13 <(echo "$files") <(echo "$want"))
            msg=
            [ -z "$extra" ] || msg+="also holds $(echo $extra); "
            [ -z "$gone" ] || msg+="lacks $(echo $gone); "
            [ "$(stat -c %a "$dir/tmp" 2>/dev/null)" = 1777 ] || msg+="/tmp is not 1777; "
            grep -q '^nonroot:x:65532:65532:' "$dir/etc/passwd" || msg+="no passwd entry for 65532; "
            check "image $a: holds only the binary, its $(($(wc -l <<<"$libs") - 1)) libraries and loader, the CA bundle, passwd, group, LICENSE, /tmp ($(wc -l <<<"$files") files)" "$msg"
        fi

        # It runs, as the image's user.
        v=$(in_image "$a" "${ref[$a]}" --network none -- /usr/local/bin/pgtoken-rotator version 2>&1 | grep -v '^WARNING')
        rev=$(podman_ image inspect --format '{{index .Labels "org.opencontainers.image.revision"}}' "${ref[$a]}" 2>/dev/null)
        h=$(in_image "$a" "${ref[$a]}" --network none -- /usr/local/bin/pgtoken-rotator check --help 2>&1 | grep -v '^WARNING')
        msg=
        [ "$v" = "pgtoken-rotator $(cat VERSION) ($rev)" ] || msg+="version printed '$v', want 'pgtoken-rotator $(cat VERSION) ($rev)'; "
        grep -q '^usage: pgtoken-rotator check ' <<<"$h" || msg+="check --help printed '$(head -n 1 <<<"$h")'; "
        [ "$(podman_ image inspect --format '{{.Config.User}}' "${ref[$a]}")" = 65532:65532 ] || msg+="the image's user is not 65532:65532; "
        check "image $a: \`version\` ($v) and \`check --help\` run in the image as 65532" "$msg"

        # TLS from inside: a token request to a local server with a self-signed
        # certificate must fail on that certificate, not on the CA bundle or OpenSSL.
        tls_check "$a" "${ref[$a]}"

        # The size.
        msg=
        [ $((size[$a] * 3)) -lt "$OLD_IMAGE_BYTES" ] || msg+="not under a third of $(mb $OLD_IMAGE_BYTES) MB; "
        stated=$(grep -oE "linux/$a [0-9]+(\.[0-9]+)? MB" README.md | head -n 1 | awk '{ print $2 }')
        if [ -z "$stated" ]; then
            msg+="README.md states no size for it (want 'linux/$a $(mb "${size[$a]}") MB'); "
        elif ! awk -v s="$stated" -v m="$(mb "${size[$a]}")" 'BEGIN { exit !(s >= m * 0.95 && s <= m * 1.05) }'; then
            msg+="README.md states $stated MB, measured $(mb "${size[$a]}") MB; "
        fi
        check "image $a: linux/$a $(mb "${size[$a]}") MB uncompressed ($(mb "${csize[$a]}") MB compressed), the Debian 12 slim image was $(mb $OLD_IMAGE_BYTES) MB" "$msg"
    done

    # The archive check can fail: the same archive with arm64 taken out of the list.
    local bad=$work/bad list_blob d
    rm -rf "$bad" && mkdir -p "$bad" && tar -xf "$archive" -C "$bad"
    list_blob=$bad/blobs/sha256/$(jq -r '.manifests[0].digest' "$bad/index.json" | cut -d: -f2)
    jq -c '.manifests |= map(select(.platform.architecture == "amd64"))' "$list_blob" >"$bad/list"
    d=$(sha256sum "$bad/list" | cut -c1-64)
    mv "$bad/list" "$bad/blobs/sha256/$d"
    jq -c --arg d "sha256:$d" --argjson n "$(stat -c %s "$bad/blobs/sha256/$d")" \
        '.manifests[0].digest = $d | .manifests[0].size = $n' "$bad/index.json" >"$bad/index" &&
        mv "$bad/index" "$bad/index.json"
    tar -C "$bad" -cf "$bad.oci.tar" oci-layout index.json blobs
    out=$(packaging/image.sh --check "$bad.oci.tar" 2>&1)
    if [ $? -ne 0 ] && grep -q 'the list has linux/amd64, want linux/amd64 linux/arm64' <<<"$out"; then
        ok "image: the archive check rejects a list without arm64"
    else
        not_ok "image: the archive check rejects a list without arm64" "it said: $(tail -n 1 <<<"$out")"
    fi
    rm -rf "$bad" "$bad.oci.tar"

    # The library check can fail: with one library emptied (/dev/null mounted over it),
    # it must say so.
    a=$host
    lib=$(cd "$work/layer-$a" 2>/dev/null && find usr/lib -name 'libcjson.so.*' -type f | head -n 1)
    if [ -n "$lib" ] && out=$(resolves "$a" "${ref[$a]}" -v "/dev/null:/$lib:ro"); then
        not_ok "image: the library check notices a broken library" "it passed with /$lib emptied"
    elif [ -n "$lib" ]; then
        ok "image: the library check notices a broken library (/$lib emptied: $(tail -n 1 <<<"$out" | sed 's/.*shared libraries: //'))"
    else
        not_ok "image: the library check notices a broken library" "no libcjson in the $a layer to empty"
    fi
}

# tls_check ARCH REF
tls_check() {
    local a=$1 ref=$2 dir=$work/tls pid= port out i
    mkdir -p "$dir"
    if ! command -v openssl >/dev/null; then
        skip "image $a: TLS with the CA bundle inside the image" "no openssl here to serve TLS"
        return
    fi
    [ -s "$dir/cert.pem" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj /CN=localhost -days 3650 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    for i in 1 2 3 4 5; do # a free port: s_server exits when the port is taken
        port=$((20000 + RANDOM % 20000))
        openssl s_server -accept "127.0.0.1:$port" -cert "$dir/cert.pem" -key "$dir/key.pem" -www -quiet \
            >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break 2
            sleep 0.1
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        pid=
    done
    [ -n "$pid" ] || { not_ok "image $a: TLS with the CA bundle inside the image" "openssl s_server did not start"; return; }
    echo assertion >"$dir/assertion"
    chmod 0644 "$dir/assertion"
    out=$(in_image "$a" "$ref" --network host -v "$PWD/$dir/assertion:/tmp/assertion:ro" \
        -e AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000001 \
        -e AZURE_TENANT_ID=00000000-0000-0000-0000-000000000002 \
        -e AZURE_FEDERATED_TOKEN_FILE=/tmp/assertion -e "AZURE_AUTHORITY_HOST=https://127.0.0.1:$port/" \
        -- /usr/local/bin/pgtoken-rotator token 2>&1 | grep -v '^WARNING')
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if grep -q 'the certificate is not trusted: self-signed certificate' <<<"$out"; then
        ok "image $a: a token request over TLS from inside the image fails only on the test server's self-signed certificate (OpenSSL and the CA bundle load)"
    else
        not_ok "image $a: TLS with the CA bundle inside the image" "$(head -n 2 <<<"$out" | tr '\n' ' ')"
    fi
}

dynamic

# --- the Dockerfile from source ----------------------------------------------------------------
if [ "${PGTR_IMAGE_BUILD:-}" = 1 ]; then
    t0=$(date +%s)
    out=$(tests/image/build.sh 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed 's/^/# /'
    case $rc in
    0) ok "image: the Dockerfile builds from source and runs (podman, offline; $(($(date +%s) - t0)) s)" ;;
    3) skip "image: the Dockerfile builds from source and runs" "$(grep -m1 '^SKIP:' <<<"$out" | sed 's/^SKIP: //')" ;;
    *) not_ok "image: the Dockerfile builds from source and runs" "$(grep -m1 'FAILED' <<<"$out")" ;;
    esac
else
    skip "image: the Dockerfile builds from source and runs" "debootstraps Debian 12 and compiles: minutes with podman's vfs storage; tests/image/build.sh does it, PGTR_IMAGE_BUILD=1 does it in this suite"
fi
exit $failed
