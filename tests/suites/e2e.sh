#!/usr/bin/env bash
# End-to-end: the real controller binary (the ASan+UBSan build) against the
# local stack with the fake API server. Each test starts and stops its stack.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PGTR_BIN=${PGTR_BIN:-$PWD/build/san/bin/pgtoken-rotator}
cd tests && exec go test -count=1 -timeout 20m -v ./stack ./e2e
