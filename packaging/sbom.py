#!/usr/bin/env python3
"""Writes an SPDX 2.3 JSON SBOM of one release binary and what it loads.

    packaging/sbom.py --arch ARCH --binary PATH --version V --out FILE [--lib PATH ...]

The packages are the controller itself and every Debian package that owns one of
the shared libraries given with --lib (the libraries the binary loads, as the
image carries them), with its exact version from dpkg, as a package URL
(pkg:deb/debian/NAME@VERSION?arch=ARCH). Nothing is fetched: dpkg's database of
this machine is the source, so run it where the release was built.
"""
import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import uuid


def owner(path, arch):
    """(package, version) of the Debian package that ships path, or None."""
    real = os.path.realpath(path)
    for p in (path, real, real.replace("/usr/lib/", "/lib/", 1), real.replace("/lib/", "/usr/lib/", 1)):
        r = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            # "libpq5:arm64: /usr/lib/aarch64-linux-gnu/libpq.so.5.15"
            name = r.stdout.splitlines()[0].split(": ", 1)[0].split(",")[0].split(":")[0].strip()
            v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", f"{name}:{arch}"],
                               capture_output=True, text=True)
            if v.returncode != 0 or not v.stdout:
                v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
            return name, v.stdout.strip()
    return None


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lib", action="append", default=[])
    a = ap.parse_args()

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch \
        else datetime.datetime.now(datetime.timezone.utc)
    name = f"pgtoken-rotator-{a.version}-linux-{a.arch}"
    main_id = "SPDXRef-Package-pgtoken-rotator"
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://github.com/pgtoken-rotator/pgtoken-rotator/spdx/{name}-"
                             + str(uuid.uuid5(uuid.NAMESPACE_URL, name + sha256(a.binary))),
        "creationInfo": {"created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "creators": ["Tool: pgtoken-rotator packaging/sbom.py"]},
        "packages": [{
            "SPDXID": main_id,
            "name": "pgtoken-rotator",
            "versionInfo": a.version,
            "downloadLocation": "https://github.com/pgtoken-rotator/pgtoken-rotator",
            "licenseConcluded": "Apache-2.0",
            "licenseDeclared": "Apache-2.0",
            "copyrightText": "NOASSERTION",
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": sha256(a.binary)}],
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": f"pkg:github/pgtoken-rotator/pgtoken-rotator@v{a.version}"}],
        }],
        "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                           "relatedSpdxElement": main_id}],
    }
    seen = {}
    for lib in a.lib:
        o = owner(lib, a.arch)
        if not o:
            print(f"sbom: no Debian package owns {lib}", file=sys.stderr)
            return 1
        seen.setdefault(o, []).append(os.path.basename(lib))
    for (pkg, ver), files in sorted(seen.items()):
        ref = "SPDXRef-Package-deb-" + "".join(c if c.isalnum() or c in ".-" else "-" for c in pkg)
        doc["packages"].append({
            "SPDXID": ref,
            "name": pkg,
            "versionInfo": ver,
            "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "filesAnalyzed": False,
            "comment": "ships " + ", ".join(sorted(files)),
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": f"pkg:deb/debian/{pkg}@{ver}?arch={a.arch}&distro=debian-12"}],
        })
        doc["relationships"].append({"spdxElementId": main_id, "relationshipType": "DEPENDS_ON",
                                     "relatedSpdxElement": ref})
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
