#!/usr/bin/env bash
# make demo: installs what it needs, builds, and runs tests/demo (see there).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
export GOPATH=$PWD/.cache/go GOCACHE=$PWD/.cache/go/build GOFLAGS=-modcacherw GOTOOLCHAIN=local
tests/deps.sh
make -j2 all fakes build/tests/pam_pgtoken.so >/dev/null
(cd tests && go build -o ../build/tests/demo ./demo)
PGTR_BIN=$PWD/build/bin/pgtoken-rotator exec build/tests/demo
