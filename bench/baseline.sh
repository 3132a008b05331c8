#!/usr/bin/env bash
# baseline.sh: what a user writes instead of the controller, as a CronJob would run it: for each
# Secret, fetch a token (the workload-identity federated exchange, with curl), check that it logs
# in (psql), and write it (kubectl patch). bench/main.go runs it on a subset of the Secrets and
# times the whole process tree (wall, and user+sys CPU of every child it reaped).
#
#   baseline.sh LIST
#
# LIST: "NAMESPACE NAME ROLE" lines. Environment: KUBECTL, KUBECONFIG, TOKEN_URL, CLIENT_ID,
# FEDERATED_TOKEN_FILE, CA, PGHOST, PGPORT, PGDATABASE. Never prints a token.
set -euo pipefail

list=$1
scope=https://ossrdbms-aad.database.windows.net/.default
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok=0
failed=0
while read -r ns name role; do
    [[ -n $ns ]] || continue
    token=$(curl -sS --fail --cacert "$CA" "$TOKEN_URL" \
        -d grant_type=client_credentials -d "client_id=$CLIENT_ID" --data-urlencode "scope=$scope" \
        -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
        --data-urlencode "client_assertion@$FEDERATED_TOKEN_FILE" | jq -r .access_token)
    if ! PGPASSWORD=$token psql -X -Atq "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$role sslmode=verify-full sslrootcert=$CA" \
        -c 'select 1' >/dev/null; then
        failed=$((failed + 1))
        continue
    fi
    url="postgresql://$role:$token@$PGHOST:$PGPORT/$PGDATABASE?sslmode=require"
    printf '{"data":{"password":"%s","DATABASE_URL":"%s"}}' \
        "$(printf %s "$token" | base64 -w0)" "$(printf %s "$url" | base64 -w0)" >"$tmp/patch.json"
    "$KUBECTL" -n "$ns" patch secret "$name" --type merge --patch-file "$tmp/patch.json" >/dev/null
    ok=$((ok + 1))
done <"$list"
echo "baseline: $ok written, $failed failed"
[[ $failed -eq 0 ]]
