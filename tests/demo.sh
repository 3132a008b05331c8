#!/usr/bin/env bash
# make demo: installs what it needs, builds, and runs tests/demo (see there).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOPATH=$PWD/.cache/go GOCACHE=$PWD/.cache/go/build GOFLAGS=-modcacherw GOTOOLCHAIN=local
env_line=$(tests/deps.sh --env)
eval "$env_line"
make -j2 all fakes build/tests/pam_pgtoken.so >/dev/null
(cd tests && go build -o ../build/tests/demo ./demo)
PGTR_BIN=$PWD/build/bin/pgtoken-rotator exec build/tests/demo
