#!/usr/bin/env bash
# make lint: clang-tidy (checks in .clang-tidy) and cppcheck over lib/ and cmd/; actionlint over
# the GitHub workflows.
set -euo pipefail
cd "$(dirname "$0")/.."
env_line=$(tests/deps.sh --env)
eval "$env_line"
flags=(-std=c17 -D_GNU_SOURCE -Ilib '-DPGTR_VERSION="lint"' '-DPGTR_GIT_REV="lint"')
for p in $(pkg-config --cflags libcurl libcjson yaml-0.1 openssl libpq libmicrohttpd); do flags+=("$p"); done
srcs=$(ls lib/*/*.c cmd/pgtoken-rotator/*.c)
rc=0
echo "clang-tidy"
# shellcheck disable=SC2086
clang-tidy --quiet $srcs -- "${flags[@]}" 2>/dev/null | grep -E 'warning:|error:' && rc=1
echo "cppcheck"
cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance --inline-suppr \
    --std=c11 -D_GNU_SOURCE -Ilib --suppress=missingIncludeSystem \
    -I/usr/include/cjson \
    -DPGTR_VERSION='"lint"' -DPGTR_GIT_REV='"lint"' lib cmd || rc=1
echo "actionlint"
# The workflows under .github/ (they cannot run here; actionlint checks their syntax,
# expressions, action inputs and the shell in their run steps' structure).
GOPATH=$PWD/.cache/go GOCACHE=$PWD/.cache/go/build GOFLAGS=-modcacherw GOTOOLCHAIN=local \
    go run github.com/rhysd/actionlint/cmd/actionlint@v1.7.12 -no-color .github/workflows/*.yml || rc=1
[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
