#!/usr/bin/env bash
# The Helm chart, the plain manifests and the RBAC they grant (tests/chart/run.sh).
exec "$(dirname "$0")/../chart/run.sh"
