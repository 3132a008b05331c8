#!/usr/bin/env bash
# The image suite: the Dockerfile's structure, checked in well under a second,
# and (with PGTR_IMAGE_BUILD=1) the real offline build and run of
# tests/image/build.sh, which takes minutes with podman's vfs storage.
#
#   tests/image/run.sh
#
# Prints TAP lines ("ok - NAME", "not ok - NAME: WHY", "ok - NAME # SKIP WHY")
# and exits 1 when one fails.
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
grep -q '^ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim$' <<<"$joined" ||
    msg+="RUNTIME_IMAGE is not debian:bookworm-slim; "
grep -q '^FROM ${BUILD_IMAGE} AS build$' <<<"$joined" || msg+="no 'FROM \${BUILD_IMAGE} AS build'; "
[ "$(grep '^FROM ' <<<"$joined" | tail -n 1)" = 'FROM ${RUNTIME_IMAGE}' ] || msg+="the last stage is not the slim runtime; "
check "Dockerfile: builds on debian:bookworm, runs on debian:bookworm-slim (two stages)" "$msg"

# --- build stage: the project's make, the -dev packages of tests/deps.sh --------------------
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
missing=$(comm -23 <(printf '%s\n' $want build-essential pkg-config | sort -u) <(printf '%s\n' $have))
[ -n "$want" ] || msg+="no '# the controller' line in tests/deps.sh; "
[ -z "$missing" ] || msg+="the build stage does not install: $(echo $missing); "
grep -qE '^RUN make .*all' <<<"$build" || msg+="the build stage does not run the project's make; "
check "Dockerfile: the build stage installs the -dev packages of tests/deps.sh and the Makefile's PKGS, and runs make" "$msg"

# --- runtime stage: runtime libraries only, non-root, entrypoint --------------------------
run=$(stage 2)
have=$(echo $(apt_pkgs <<<"$run"))
msg=
grep -qE -- '-dev|build-essential|gcc|make( |$)' <<<"$have" && msg+="installs build tools ($have); "
# The runtime packages are exactly those owning the libraries the binary links
# to (libc6 is in the base), plus the CA bundle.
bin=build/bin/pgtoken-rotator
if [ -x "$bin" ] && command -v readelf >/dev/null && command -v dpkg >/dev/null; then
    sos=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    owners=$(dpkg -S $(printf '*/%s ' $sos) 2>/dev/null) # one scan of dpkg's file lists
    want_rt=ca-certificates
    for so in $sos; do
        pkg=$(grep -m1 "/$so\$" <<<"$owners" | cut -d: -f1)
        [ -n "$pkg" ] || { msg+="no package owns $so; "; continue; }
        [ "$pkg" = libc6 ] || want_rt+=" $pkg"
    done
    want_rt=$(echo $(printf '%s\n' $want_rt | sort -u))
    what="the libraries $bin links to, and ca-certificates"
else
    want_rt="ca-certificates libcjson1 libcurl4 libpq5 libssl3 libyaml-0-2"
    what="the runtime libraries (no $bin to read: run make)"
fi
[ "$have" = "$want_rt" ] || msg+="installs '$have', want '$want_rt'; "
check "Dockerfile: the runtime stage installs only $what ($want_rt)" "$msg"

msg=
grep -q '^USER 65532:65532$' <<<"$run" || msg+="not USER 65532:65532; "
grep -q '^ENTRYPOINT \["/usr/local/bin/pgtoken-rotator"\]$' <<<"$run" || msg+="ENTRYPOINT is not the binary; "
grep -q '^CMD \["run"\]$' <<<"$run" || msg+='CMD is not ["run"]; '
grep -q '^COPY --from=build ' <<<"$run" || msg+="the binary is not copied from the build stage; "
grep -q '^COPY LICENSE ' <<<"$run" || msg+="the image does not carry LICENSE; "
for l in title description version revision source licenses; do
    grep -q "org.opencontainers.image.$l=" <<<"$run" || msg+="no OCI label $l; "
done
check "Dockerfile: runs as UID 65532, ENTRYPOINT the binary, CMD [\"run\"], OCI labels, LICENSE" "$msg"

msg=
[ "$(sed -e '/^#/d' -e '/^$/d' .dockerignore 2>/dev/null | head -n 1)" = '*' ] ||
    msg+=".dockerignore does not start by excluding everything; "
for p in .git build .cache node_modules; do
    grep -qx "!$p.*" .dockerignore 2>/dev/null && msg+="$p is let into the context; "
done
check ".dockerignore: the context is the sources only (no .git, build/, .cache/, node_modules/)" "$msg"

# --- the real build --------------------------------------------------------------------------
if [ "${PGTR_IMAGE_BUILD:-}" = 1 ]; then
    t0=$(date +%s)
    out=$(tests/image/build.sh 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed 's/^/# /'
    case $rc in
    0) ok "image builds and runs (podman, offline; $(($(date +%s) - t0)) s)" ;;
    3) ok "image builds and runs # SKIP $(grep -m1 '^SKIP:' <<<"$out" | sed 's/^SKIP: //')" ;;
    *) not_ok "image builds and runs" "$(grep -m1 'FAILED' <<<"$out")" ;;
    esac
else
    ok "image builds and runs # SKIP takes 3 to 6 minutes with podman's vfs storage here; make image builds and runs it, PGTR_IMAGE_BUILD=1 does it in this suite"
fi
exit $failed
