#!/usr/bin/env bash
# make lint: clang-tidy (checks in .clang-tidy) and cppcheck over lib/ and cmd/; actionlint over
# the GitHub workflows; promtool check rules over the chart's alert rules; the layering rule
# (tests/suites/layers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
env_line=$(tests/deps.sh --env)
eval "$env_line"
flags=(-std=c17 -D_GNU_SOURCE -Ilib '-DPGTR_VERSION="lint"' '-DPGTR_GIT_REV="lint"')
for p in $(pkg-config --cflags libcjson yaml-0.1 openssl libpq); do flags+=("$p"); done
srcs=$(ls lib/*/*.c cmd/pgtoken-rotator/*.c)
rc=0
echo "clang-tidy"
# (clang-tidy exits non-zero on its errors: its output is read whole, not piped, so that
# pipefail cannot hide them. $srcs is split into file names on purpose.)
# shellcheck disable=SC2086
tidy=$(clang-tidy --quiet $srcs -- "${flags[@]}" 2>/dev/null || true)
grep -E 'warning:|error:' <<<"$tidy" && rc=1
echo "cppcheck"
cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance --inline-suppr \
    --std=c11 -D_GNU_SOURCE -Ilib --suppress=missingIncludeSystem \
    -I/usr/include/cjson \
    -DPGTR_VERSION='"lint"' -DPGTR_GIT_REV='"lint"' lib cmd || rc=1
echo "layers"
# An include that points up a layer (or across, between idp and pg) fails.
layers=$(tests/suites/layers.sh || true)
grep -v '^ok - ' <<<"$layers" && rc=1
echo "actionlint"
# The workflows under .github/ (they cannot run here; actionlint checks their syntax,
# expressions, action inputs and the shell in their run steps' structure).
GOPATH=$PWD/.cache/go GOCACHE=$PWD/.cache/go/build GOFLAGS=-modcacherw GOTOOLCHAIN=local \
    go run github.com/rhysd/actionlint/cmd/actionlint@v1.7.12 -no-color .github/workflows/*.yml || rc=1
echo "promtool check rules"
# The chart's alert rules (promtool from Debian's prometheus package, never installed:
# tests/promtool.sh). tests/suites/alerts.sh runs their unit tests.
promtool=$(tests/promtool.sh) && "$promtool" check rules charts/pgtoken-rotator/files/prometheus-rules.yaml || rc=1
[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
