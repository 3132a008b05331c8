#!/usr/bin/env bash
# The real kube-apiserver tier's own smoke test (tests/realkube/smoke_test.sh):
# the server the e2e tier runs against behaves as the tests expect.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "${PGTR_SKIP_REALKUBE:-}" = 1 ]; then
    echo "--- SKIP: RealKubeSmoke (PGTR_SKIP_REALKUBE=1 was set on purpose)"
    exit 0
fi
FAKES=$PWD/build/tests/fakes exec tests/realkube/smoke_test.sh
