#!/usr/bin/env bash
# The real Azure SDKs against the fakes (tests/e2e/sdk_test.go): installs the
# pinned SDKs (setup.sh; quick when already installed), then runs the TestSDK*
# e2e tests with go test -v. Needs the controller (ASan+UBSan build), the Go
# fakes and the PAM module built first:
#   make SAN=1 && make fakes && make build/tests/pam_pgtoken.so
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
export PATH=$PATH:/usr/local/go/bin
export GOPATH=${GOPATH:-$ROOT/.cache/go} GOCACHE=${GOCACHE:-$ROOT/.cache/go/build}
export GOFLAGS=${GOFLAGS:--modcacherw} GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export PGTR_BIN=${PGTR_BIN:-$ROOT/build/san/bin/pgtoken-rotator}

for f in "$PGTR_BIN" build/tests/fakes build/tests/pam_pgtoken.so; do
    if [ ! -e "$f" ]; then
        echo "not ok - sdk: $f is missing; build first: make SAN=1 && make fakes && make build/tests/pam_pgtoken.so"
        exit 1
    fi
done

t0=$(date +%s%N)
if ! tests/sdk/setup.sh; then
    echo "not ok - sdk: tests/sdk/setup.sh failed (the SDKs come from PyPI and npm)"
    exit 1
fi
ms=$((($(date +%s%N) - t0) / 1000000))
echo "sdk setup took $((ms / 1000)).$(printf %03d $((ms % 1000)))s"

export PGTR_SDK=1
export PGTR_SDK_PYTHON=${PGTR_SDK_PYTHON:-${PGTR_SDK_VENV:-$ROOT/.venv-sdk}/bin/python}
export PGTR_SDK_NODE_DIR=$ROOT/tests/sdk
cd tests && exec go test -count=1 -timeout 10m -v -run '^TestSDK' ./e2e
