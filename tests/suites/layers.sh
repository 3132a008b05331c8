#!/usr/bin/env bash
# The layering rule: lib/ is layered base < net < kube < idp, pg < rot, proxy < app,
# and cmd/ on top. A module includes only its own layer's headers and those of the
# layers below it; idp and pg are side by side and include neither the other, and
# so are rot and proxy.
# Prints TAP lines: one per layer, and one that proves the check fails on an
# upward include (a copy of the tree with one added).
#
#   tests/suites/layers.sh            check lib/ and cmd/ (make lint runs it too)
#   tests/suites/layers.sh --dir D    check the tree under D instead
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

rank() {
    case $1 in
    base) echo 0 ;; net) echo 1 ;; kube) echo 2 ;; idp | pg) echo 3 ;; rot | proxy) echo 4 ;;
    app) echo 5 ;; cmd) echo 6 ;; *) echo -1 ;;
    esac
}

# violations DIR: one line per include that points up or sideways, "file:line: why".
violations() {
    local root=$1 f layer inc target lr tr n
    for f in "$root"/lib/*/*.[ch] "$root"/cmd/*/*.[ch]; do
        [ -e "$f" ] || continue
        case $f in
        "$root"/cmd/*) layer=cmd ;;
        *) layer=$(basename "$(dirname "$f")") ;;
        esac
        lr=$(rank "$layer")
        if [ "$lr" -lt 0 ]; then
            echo "${f#"$root"/}: lib/$layer is not a known layer (add it to tests/suites/layers.sh)"
            continue
        fi
        while IFS=: read -r n inc; do
            target=${inc#*\"}
            target=${target%%/*}
            tr=$(rank "$target")
            if [ "$tr" -lt 0 ]; then
                echo "${f#"$root"/}:$n: includes $target/, not a known layer"
            elif [ "$tr" -gt "$lr" ] || { [ "$tr" -eq "$lr" ] && [ "$target" != "$layer" ]; }; then
                echo "${f#"$root"/}:$n: $layer includes $target/ (${inc#\#include })"
            fi
        done < <(grep -n '^#include "[a-z]*/' "$f")
    done
}

root=$PWD
[ "${1:-}" = --dir ] && root=$2
failed=0
out=$(violations "$root")
for layer in base net kube idp pg rot proxy app cmd; do
    bad=$(echo "$out" | grep -E "^(lib|cmd)/$layer/" || true)
    [ "$layer" = cmd ] && bad=$(echo "$out" | grep -E '^cmd/' || true)
    if [ -z "$bad" ]; then
        echo "ok - layers: $layer includes only its own layer and those below"
    else
        echo "not ok - layers: $layer: $(echo "$bad" | tr '\n' ';')"
        failed=1
    fi
done
other=$(echo "$out" | grep -vE '^(lib/(base|net|kube|idp|pg|rot|proxy|app)|cmd)/' | grep . || true)
if [ -n "$other" ]; then
    echo "not ok - layers: $(echo "$other" | tr '\n' ';')"
    failed=1
fi

# The check can fail: the same tree with base including rot/, and pg including idp/.
if [ "$root" = "$PWD" ]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/layers.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/lib" "$tmp/cmd"
    cp -r lib/. "$tmp/lib/"
    cp -r cmd/. "$tmp/cmd/"
    echo '#include "rot/policy.h"' >>"$tmp/lib/base/buf.c"
    echo '#include "idp/idp.h"' >>"$tmp/lib/pg/pgcheck.c"
    got=$(violations "$tmp")
    if echo "$got" | grep -q '^lib/base/buf.c:.*base includes rot/' &&
        echo "$got" | grep -q '^lib/pg/pgcheck.c:.*pg includes idp/' &&
        [ "$(echo "$got" | grep -c .)" -eq 2 ]; then
        echo "ok - layers: an upward and a sideways include are caught"
    else
        echo "not ok - layers: the check missed an injected include: ${got:-nothing found}"
        failed=1
    fi
fi
exit $failed
