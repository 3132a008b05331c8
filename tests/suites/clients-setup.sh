#!/usr/bin/env bash
# Installs the real clients the e2e client tests log in with (tests/clients/setup.sh: a venv
# with Prefect 3, SQLAlchemy 2 and asyncpg; node-postgres and Prisma 7; pgJDBC), and helm for
# the Prefect chart test (make helm). Runs before
# e2e.sh (suites run in name order). The first run takes minutes (downloads); later runs skip
# what is installed and take about a second.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
t0=$(date +%s)
if tests/clients/setup.sh; then
    echo "ok - clients setup ($(( $(date +%s) - t0 ))s)"
else
    echo "not ok - clients setup: tests/clients/setup.sh failed; the e2e client tests will fail"
    exit 1
fi
# TestClientsPrefectHelm renders Prefect's chart (tests/fixtures/prefect-server) with helm.
if make -s -f packaging.mk helm; then
    echo "ok - helm for the Prefect chart test (make helm)"
else
    echo "not ok - helm for the Prefect chart test: make helm failed; TestClientsPrefectHelm will fail"
    exit 1
fi
