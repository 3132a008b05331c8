#!/usr/bin/env bash
# Smoke test of the real Kubernetes tier: builds it (build.sh), starts it in a
# temporary folder with a fresh PKI, checks the API behaviours the controller
# relies on with kubectl and curl, and always stops it.
#
#   tests/realkube/smoke_test.sh
#
# Prints TAP lines (ok - NAME / not ok - NAME: WHY) and a closing
# "smoke: N passed, N failed". Exit 0 when all pass, 1 when one fails, 3 when
# the tier cannot be built or started here (build.sh's exit code).
# Needs curl, jq, openssl. FAKES=/path/to/fakes uses that fakes binary instead
# of building one; REALKUBE_KEEP=1 keeps the temporary folder (its path is printed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"

for tool in curl jq openssl base64; do
	command -v "$tool" >/dev/null || { echo "not ok - tools: $tool is missing (apt-get install $tool)"; exit 3; }
done

work=$(mktemp -d /tmp/realkube-smoke.XXXXXX)
cleanup() {
	"$here/stop.sh" "$work" >/dev/null 2>&1 || "$here/stop.sh" "$work" || true
	if [[ ${REALKUBE_KEEP:-0} == 1 ]]; then
		echo "# kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1: $2"; failed=$((failed + 1)); }
finish() {
	echo "smoke: $passed passed, $failed failed"
	((failed == 0)) || exit 1
	exit 0
}

# --- build, PKI, start ---------------------------------------------------------
if "$here/build.sh" >"$work/build.log" 2>&1; then
	ok "build ($(tail -n1 "$work/build.log" | sed 's/^realkube build: //'))"
else
	rc=$?
	not_ok build "exit $rc: $(tail -n1 "$work/build.log")"
	cat "$work/build.log" >&2
	echo "smoke: $passed passed, $failed failed"
	exit "$rc"
fi

fakes=${FAKES:-$project_root/build/tests/fakes}
if [[ -z ${FAKES:-} ]]; then
	mkdir -p "$(dirname "$fakes")"
	if ! (cd "$project_root/tests" && go build -o "$fakes" ./fakes/cmd/fakes) >"$work/fakes-build.log" 2>&1; then
		not_ok pki "the fakes tool does not build (tests/fakes/cmd/fakes): $(head -n3 "$work/fakes-build.log" | tr '\n' ' ')"
		finish
	fi
fi
if "$fakes" pki --dir "$work/pki" >"$work/pki.log" 2>&1; then
	ok "pki made by the fakes tool"
else
	not_ok pki "$(tail -n1 "$work/pki.log")"
	finish
fi

if "$here/start.sh" "$work" 2>"$work/start.log"; then
	ok "start ($(tail -n1 "$work/start.log" | sed 's/^realkube start: //'))"
else
	rc=$?
	not_ok start "exit $rc: $(tail -n1 "$work/start.log")"
	cat "$work/start.log" >&2
	echo "smoke: $passed passed, $failed failed"
	exit $((rc == 3 ? 3 : 1))
fi
source "$work/realkube.env"
kubectl() { "$REALKUBE_KUBECTL" --kubeconfig="$REALKUBE_KUBECONFIG" "$@"; }

# --- helpers for the checks ------------------------------------------------------
# Each check runs in a subshell and prints why it failed as its last line.
check() { # name function
	local out
	if out=$("$2" 2>&1); then
		ok "$1"
	else
		not_ok "$1" "$(tail -n1 <<<"$out")"
	fi
}
fail() {
	echo "$*"
	exit 1
}

# call METHOD PATH [curl args]: as admin; body to $work/body, prints the HTTP code.
call() {
	local method=$1 path=$2
	shift 2
	curl -sS -o "$work/body" -w '%{http_code}' --cacert "$REALKUBE_CA" \
		--cert "$REALKUBE_ADMIN_CERT" --key "$REALKUBE_ADMIN_KEY" -X "$method" "$REALKUBE_URL$path" "$@"
}
# call_as TOKEN METHOD PATH [curl args]: the same with a bearer token.
call_as() {
	local token=$1 method=$2 path=$3
	shift 3
	curl -sS -o "$work/body" -w '%{http_code}' --cacert "$REALKUBE_CA" \
		-H "Authorization: Bearer $token" -X "$method" "$REALKUBE_URL$path" "$@"
}
body() { head -c 400 "$work/body"; }
json=(-H 'Content-Type: application/json')

b64url_decode() { # stdin: base64url without padding
	local s
	s=$(tr '_-' '/+')
	while ((${#s} % 4)); do s+='='; done
	base64 -d <<<"$s"
}

ns=smoke
secrets=/api/v1/namespaces/$ns/secrets

# --- the checks ----------------------------------------------------------------------
t_namespace() {
	kubectl create namespace "$ns" || fail "kubectl create namespace failed"
	[[ $(kubectl get namespace "$ns" -o jsonpath='{.status.phase}') == Active ]] || fail "namespace not Active"
}

t_secret() {
	local s code
	for s in 'db-token:{"app":"pgtoken","role":"reader"}' 'other:{"app":"unrelated"}'; do
		code=$(call POST "$secrets" "${json[@]}" -d "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":\"Opaque\",
			\"metadata\":{\"name\":\"${s%%:*}\",\"labels\":${s#*:}},\"stringData\":{\"password\":\"p1\"}}")
		[[ $code == 201 ]] || fail "POST secret ${s%%:*}: HTTP $code $(body)"
	done
	[[ $(kubectl -n "$ns" get secret db-token -o jsonpath='{.data.password}') == "$(printf p1 | base64)" ]] ||
		fail "stringData did not become data"
}

t_label_selector() {
	local code names
	code=$(call GET "$secrets?labelSelector=app%3Dpgtoken%2Crole+in+%28reader%2Cwriter%29")
	[[ $code == 200 ]] || fail "list: HTTP $code $(body)"
	names=$(jq -r '[.items[].metadata.name] | join(",")' "$work/body")
	[[ $names == db-token ]] || fail "labelSelector matched [$names], want [db-token]"
	jq -e '.metadata.resourceVersion | test("^[0-9]+$")' "$work/body" >/dev/null || fail "list has no resourceVersion"
}

t_watch() {
	local code rv
	code=$(call GET "$secrets")
	[[ $code == 200 ]] || fail "list: HTTP $code"
	rv=$(jq -r .metadata.resourceVersion "$work/body")
	curl -sS -N --max-time 10 --cacert "$REALKUBE_CA" --cert "$REALKUBE_ADMIN_CERT" --key "$REALKUBE_ADMIN_KEY" \
		"$REALKUBE_URL$secrets?watch=1&allowWatchBookmarks=true&resourceVersion=$rv" >"$work/watch.out" 2>&1 &
	local watcher=$!
	code=$(call POST "$secrets" "${json[@]}" -d '{"metadata":{"name":"watched","labels":{"app":"pgtoken"}}}')
	[[ $code == 201 ]] || fail "POST secret watched: HTTP $code $(body)"
	for _ in $(seq 100); do
		if jq -e 'select(.type == "ADDED" and .object.metadata.name == "watched")' "$work/watch.out" >/dev/null 2>&1; then
			kill "$watcher" 2>/dev/null || true
			return 0
		fi
		sleep 0.1
	done
	kill "$watcher" 2>/dev/null || true
	fail "no ADDED event for secret watched within 10 s; got: $(head -c 300 "$work/watch.out")"
}

t_watch_initial_events() {
	# Streaming list (sendInitialEvents): the existing objects as ADDED, then a
	# BOOKMARK annotated k8s.io/initial-events-end, at once (other bookmarks come about once a minute).
	curl -sS -N --max-time 10 --cacert "$REALKUBE_CA" --cert "$REALKUBE_ADMIN_CERT" --key "$REALKUBE_ADMIN_KEY" \
		"$REALKUBE_URL$secrets?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan" \
		>"$work/watch2.out" 2>&1 &
	local watcher=$!
	for _ in $(seq 100); do
		# grep, not jq: the stream is still being written and its last line may be partial.
		if grep -q '"k8s.io/initial-events-end":"true"' "$work/watch2.out"; then
			kill "$watcher" 2>/dev/null || true
			local added
			added=$(grep -c '"type":"ADDED"' "$work/watch2.out")
			[[ $added == 3 ]] || fail "want 3 ADDED before the bookmark, got $added: $(head -c 300 "$work/watch2.out")"
			return 0
		fi
		sleep 0.1
	done
	kill "$watcher" 2>/dev/null || true
	fail "no initial-events-end BOOKMARK within 10 s; got: $(head -c 300 "$work/watch2.out")"
}

t_merge_patch() {
	local code
	code=$(call PATCH "$secrets/db-token" -H 'Content-Type: application/merge-patch+json' \
		-d '{"metadata":{"annotations":{"pgtoken/rotated-at":"now"}},"stringData":{"password":"p2"}}')
	[[ $code == 200 ]] || fail "PATCH: HTTP $code $(body)"
	jq -e '.metadata.annotations["pgtoken/rotated-at"] == "now" and .metadata.labels.app == "pgtoken"
		and .data.password == ("p2" | @base64)' "$work/body" >/dev/null || fail "patched object is wrong: $(body)"
}

t_stale_put() {
	local code old
	code=$(call GET "$secrets/db-token")
	[[ $code == 200 ]] || fail "GET: HTTP $code"
	cp "$work/body" "$work/db-token.json"
	old=$(jq -r .metadata.resourceVersion "$work/db-token.json")
	code=$(call PATCH "$secrets/db-token" -H 'Content-Type: application/merge-patch+json' -d '{"stringData":{"password":"p3"}}')
	[[ $code == 200 ]] || fail "PATCH: HTTP $code $(body)"
	[[ $(jq -r .metadata.resourceVersion "$work/body") != "$old" ]] || fail "PATCH did not change resourceVersion"
	code=$(call PUT "$secrets/db-token" "${json[@]}" --data-binary @"$work/db-token.json")
	[[ $code == 409 ]] || fail "PUT with stale resourceVersion $old: HTTP $code, want 409"
	jq -e '.kind == "Status" and .reason == "Conflict" and .code == 409' "$work/body" >/dev/null ||
		fail "409 body is not a Conflict Status: $(body)"
	# And with the current resourceVersion the same PUT succeeds.
	jq --arg rv "$(kubectl -n "$ns" get secret db-token -o jsonpath='{.metadata.resourceVersion}')" \
		'.metadata.resourceVersion = $rv' "$work/db-token.json" >"$work/db-token-fresh.json"
	code=$(call PUT "$secrets/db-token" "${json[@]}" --data-binary @"$work/db-token-fresh.json")
	[[ $code == 200 ]] || fail "PUT with current resourceVersion: HTTP $code $(body)"
}

token_request() { # sa audience seconds: prints the token
	local code
	code=$(call POST "/api/v1/namespaces/$ns/serviceaccounts/$1/token" "${json[@]}" \
		-d "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",
			\"spec\":{\"audiences\":[\"$2\"],\"expirationSeconds\":$3}}")
	[[ $code == 201 ]] || fail "TokenRequest for $1: HTTP $code $(body)"
	jq -r .status.token "$work/body"
}

t_token_request() {
	local token claims header
	kubectl -n "$ns" create serviceaccount rotator || fail "kubectl create serviceaccount failed"
	token=$(token_request rotator api://AzureADTokenExchange 3600) || fail "$token"
	jq -e '.status.expirationTimestamp | test("Z$")' "$work/body" >/dev/null || fail "no status.expirationTimestamp"
	header=$(cut -d. -f1 <<<"$token" | b64url_decode) || fail "header is not base64url"
	claims=$(cut -d. -f2 <<<"$token" | b64url_decode) || fail "payload is not base64url"
	jq -e '.alg == "RS256" and (.kid | length > 0)' <<<"$header" >/dev/null || fail "header: $header"
	jq -e --arg iss "$REALKUBE_ISSUER" --arg sub "system:serviceaccount:$ns:rotator" '
		(.aud | index("api://AzureADTokenExchange")) != null and .iss == $iss and .sub == $sub
		and (.exp - .iat) == 3600' <<<"$claims" >/dev/null || fail "claims: $claims"
	# The signature verifies with the service account public key.
	cut -d. -f3 <<<"$token" | b64url_decode >"$work/sig"
	printf '%s' "${token%.*}" | openssl dgst -sha256 -verify "$work/pki/sa.pub" -signature "$work/sig" >/dev/null ||
		fail "signature does not verify with pki/sa.pub"
}

t_lease() {
	local code now
	now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
	code=$(call POST "/apis/coordination.k8s.io/v1/namespaces/$ns/leases" "${json[@]}" -d "{
		\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"pgtoken-rotator\"},
		\"spec\":{\"holderIdentity\":\"smoke-1\",\"leaseDurationSeconds\":15,\"acquireTime\":\"$now\",\"renewTime\":\"$now\"}}")
	[[ $code == 201 ]] || fail "POST lease: HTTP $code $(body)"
	[[ $(kubectl -n "$ns" get lease pgtoken-rotator -o jsonpath='{.spec.holderIdentity}') == smoke-1 ]] ||
		fail "lease holder not smoke-1"
	code=$(call POST "/apis/coordination.k8s.io/v1/namespaces/$ns/leases" "${json[@]}" \
		-d '{"metadata":{"name":"pgtoken-rotator"},"spec":{"holderIdentity":"smoke-2"}}')
	[[ $code == 409 ]] || fail "second create of the lease: HTTP $code, want 409 AlreadyExists"
}

t_rbac() {
	local token code
	token=$(token_request rotator https://kubernetes.default.svc 600) || fail "$token"
	code=$(call_as "$token" GET "$secrets")
	[[ $code == 403 ]] || fail "list secrets without a RoleBinding: HTTP $code, want 403 $(body)"
	jq -e --arg u "system:serviceaccount:$ns:rotator" '.reason == "Forbidden" and (.message | contains($u))' \
		"$work/body" >/dev/null || fail "403 body: $(body)"
	# With a Role and RoleBinding the same token may list (RBAC, not authentication, said no).
	kubectl -n "$ns" create role secret-reader --verb=get,list,watch --resource=secrets >/dev/null || fail "create role"
	kubectl -n "$ns" create rolebinding rotator-reads --role=secret-reader --serviceaccount="$ns:rotator" >/dev/null ||
		fail "create rolebinding"
	for _ in $(seq 50); do
		code=$(call_as "$token" GET "$secrets")
		[[ $code == 200 ]] && break
		sleep 0.1
	done
	[[ $code == 200 ]] || fail "list secrets with a RoleBinding: HTTP $code $(body)"
	code=$(call_as "$token" GET /api/v1/namespaces/default/secrets)
	[[ $code == 403 ]] || fail "list secrets in another namespace: HTTP $code, want 403"
	code=$(call_as "not-a-token" GET "$secrets")
	[[ $code == 401 ]] || fail "a bad token: HTTP $code, want 401"
}

check "kubectl create namespace" t_namespace
check "create labelled Secrets (POST)" t_secret
check "list with labelSelector" t_label_selector
check "watch with allowWatchBookmarks sees ADDED" t_watch
check "watch with sendInitialEvents ends with initial-events-end BOOKMARK" t_watch_initial_events
check "PATCH application/merge-patch+json" t_merge_patch
check "PUT with stale resourceVersion gives 409 Conflict" t_stale_put
check "TokenRequest audience api://AzureADTokenExchange gives a JWT with aud, iss, sub, signature" t_token_request
check "Lease create" t_lease
check "RBAC: ServiceAccount token without RoleBinding gets 403 on listing secrets" t_rbac

finish
