#!/usr/bin/env bash
# Starts a real etcd and kube-apiserver on loopback, for tests.
#
#   tests/realkube/start.sh DIR
#
# DIR must hold pki/ made by the fakes tool (`fakes pki --dir DIR/pki`). The
# binaries come from build.sh (run it first; start.sh never builds).
# When it returns (exit 0), the API server answers /readyz and DIR has:
#   realkube.env       REALKUBE_URL=https://127.0.0.1:PORT, REALKUBE_KUBECONFIG=...,
#                      and more (KEY=value lines, usable with `source` or make's include)
#   admin.kubeconfig   client certificate CN=admin O=system:masters (cluster-admin)
#   etcd.pid, kube-apiserver.pid, etcd.log, kube-apiserver.log, audit.log
#   etcd-data/
# Stop with stop.sh DIR. Starting again in the same DIR keeps the etcd data and
# the ports (so clients can reconnect to the same URL); a part that is still
# running is kept, so `stop.sh DIR kube-apiserver; start.sh DIR` restarts the
# API server alone.
#
# Settings (environment):
#   REALKUBE_ISSUER           service account issuer (default https://kubernetes.default.svc)
#   REALKUBE_API_AUDIENCES    default https://kubernetes.default.svc,api://AzureADTokenExchange
#   REALKUBE_TOKEN_AUTH_FILE  static token file (--token-auth-file); DIR/tokens.csv is used if present
#   REALKUBE_AUDIT            1 (default): audit log of every request at Metadata level in DIR/audit.log
#   REALKUBE_APISERVER_ARGS   more kube-apiserver flags, split on spaces
#   REALKUBE_START_TIMEOUT    seconds to wait for readiness (default 90)
#   REALKUBE_BIN              folder with the binaries (default: what build.sh --print-bin says)
# Exit codes: 0 started; 3 the binaries are missing (run build.sh); 1 any other
# error (then what this run started is stopped again).
set -euo pipefail

trap 'echo "realkube start: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"

die() {
	echo "realkube start: $*" >&2
	exit 1
}
say() { echo "realkube start: $*" >&2; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
[[ -d $1 ]] || die "no such directory: $1"
dir=$(cd "$1" && pwd)
[[ $dir != *[[:space:]\"\'\$\\]* ]] || die "DIR must not contain spaces, quotes, \$ or \\ (it goes unquoted into realkube.env): $dir"
pki=$dir/pki
for f in ca.crt server.crt server.key admin.crt admin.key sa.key sa.pub; do
	[[ -f $pki/$f ]] || die "missing $pki/$f; make the PKI with: fakes pki --dir $pki"
done
for b in etcd kube-apiserver; do
	if [[ ! -x $REALKUBE_BIN/$b ]]; then
		echo "realkube start: missing $REALKUBE_BIN/$b; run tests/realkube/build.sh first" >&2
		exit 3
	fi
done

issuer=${REALKUBE_ISSUER:-https://kubernetes.default.svc}
audiences=${REALKUBE_API_AUDIENCES:-https://kubernetes.default.svc,api://AzureADTokenExchange}
timeout=${REALKUBE_START_TIMEOUT:-90}
started_at=$(date +%s%N)

# --- helpers -------------------------------------------------------------------
# On failure, stop what this run started (a part kept from an earlier start stays).
started=()
ready=0
stop_started() {
	((ready)) && return
	local i
	for ((i = ${#started[@]} - 1; i >= 0; i--)); do
		"$here/stop.sh" "$dir" "${started[i]}" >&2 || true
	done
}
trap stop_started EXIT
trap "exit 1" INT TERM

running() { # name: is DIR/name.pid a live process of that program?
	local pid
	pid=$(cat "$dir/$1.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && realkube_alive "$pid" "$1"
}

listening_ports() { # every TCP port something listens on (IPv4 and IPv6), one a line
	local hex
	awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		while read -r hex; do echo $((16#$hex)); done
}

taken=" "
free_port() { # VAR: set VAR to a port below the ephemeral range that nothing listens on and we did not hand out
	local used port
	used=" $(listening_ports | tr '\n' ' ')"
	for _ in $(seq 200); do
		port=$((20000 + RANDOM % 12000))
		if [[ $used != *" $port "* && $taken != *" $port "* ]]; then
			taken+="$port "
			printf -v "$1" %s "$port"
			return
		fi
	done
	die "found no free port"
}

port_is_free() { [[ " $(listening_ports | tr '\n' ' ') " != *" $1 "* ]]; }

env_value() { # key: its value in an earlier DIR/realkube.env, if any
	[[ -f $dir/realkube.env ]] || return 0
	sed -n "s/^$1=//p" "$dir/realkube.env" | tail -n1
}

show_log() { # file: its last lines, to tell why something did not start
	echo "---- last lines of $1 ----" >&2
	tail -n 25 "$1" >&2 || true
	echo "----" >&2
}

# --- ports: reuse those of an earlier start in this DIR ------------------------------
etcd_port=$(env_value REALKUBE_ETCD_PORT)
peer_port=$(env_value REALKUBE_ETCD_PEER_PORT)
api_port=$(env_value REALKUBE_PORT)
[[ -n $etcd_port ]] || free_port etcd_port
[[ -n $peer_port ]] || free_port peer_port
[[ -n $api_port ]] || free_port api_port
etcd_url=http://127.0.0.1:$etcd_port
api_url=https://127.0.0.1:$api_port

running kube-apiserver && die "kube-apiserver is already running (pid $(cat "$dir/kube-apiserver.pid")); stop it with stop.sh $dir"

# --- etcd --------------------------------------------------------------------------------
if running etcd; then
	say "etcd is already running (pid $(cat "$dir/etcd.pid")), keeping it"
else
	for p in "$etcd_port" "$peer_port"; do
		port_is_free "$p" || die "port $p (from $dir/realkube.env) is in use; remove that file to get new ports"
	done
	# --unsafe-no-fsync: test data need not survive a power cut, and fsync is
	# most of etcd's write latency on a virtual disk.
	"$REALKUBE_BIN/etcd" \
		--name=realkube \
		--data-dir="$dir/etcd-data" \
		--listen-client-urls="$etcd_url" \
		--advertise-client-urls="$etcd_url" \
		--listen-peer-urls="http://127.0.0.1:$peer_port" \
		--initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
		--initial-cluster="realkube=http://127.0.0.1:$peer_port" \
		--initial-cluster-state=new \
		--unsafe-no-fsync \
		--log-level=warn \
		</dev/null >"$dir/etcd.log" 2>&1 &
	echo $! >"$dir/etcd.pid"
	started+=(etcd)
	until curl -fsS --max-time 2 "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"'; do
		if ! running etcd; then
			show_log "$dir/etcd.log"
			die "etcd exited at start"
		fi
		if (($(date +%s%N) - started_at > timeout * 1000000000)); then
			show_log "$dir/etcd.log"
			die "etcd not healthy after ${timeout}s"
		fi
		sleep 0.1
	done
fi

# --- kube-apiserver ------------------------------------------------------------------
port_is_free "$api_port" || die "port $api_port (from $dir/realkube.env) is in use; remove that file to get new ports"
args=(
	--bind-address=127.0.0.1
	--secure-port="$api_port"
	# Where the "kubernetes" Service's endpoints point; no traffic goes there.
	--advertise-address=127.0.0.1
	--endpoint-reconciler-type=none
	--service-cluster-ip-range=10.96.0.0/16
	--etcd-servers="$etcd_url"
	--tls-cert-file="$pki/server.crt"
	--tls-private-key-file="$pki/server.key"
	--client-ca-file="$pki/ca.crt"
	--authorization-mode=RBAC
	--service-account-issuer="$issuer"
	--service-account-key-file="$pki/sa.pub"
	--service-account-signing-key-file="$pki/sa.key"
	--api-audiences="$audiences"
	--profiling=false
)
token_file=${REALKUBE_TOKEN_AUTH_FILE:-}
[[ -z $token_file && -f $dir/tokens.csv ]] && token_file=$dir/tokens.csv
[[ -n $token_file ]] && args+=(--token-auth-file="$token_file")
if [[ ${REALKUBE_AUDIT:-1} == 1 ]]; then
	cat >"$dir/audit-policy.yaml" <<-'EOF'
		apiVersion: audit.k8s.io/v1
		kind: Policy
		omitStages: [RequestReceived]
		rules:
		- level: Metadata
	EOF
	args+=(--audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log" --audit-log-maxbackup=1)
fi
# shellcheck disable=SC2206 # split on spaces on purpose
[[ -n ${REALKUBE_APISERVER_ARGS:-} ]] && args+=(${REALKUBE_APISERVER_ARGS})

"$REALKUBE_BIN/kube-apiserver" "${args[@]}" </dev/null >"$dir/kube-apiserver.log" 2>&1 &
echo $! >"$dir/kube-apiserver.pid"
started+=(kube-apiserver)

admin_curl=(curl -sS --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key")
until [[ $("${admin_curl[@]}" "$api_url/readyz" 2>/dev/null) == ok ]]; do
	if ! running kube-apiserver; then
		show_log "$dir/kube-apiserver.log"
		die "kube-apiserver exited at start"
	fi
	if (($(date +%s%N) - started_at > timeout * 1000000000)); then
		show_log "$dir/kube-apiserver.log"
		"${admin_curl[@]}" "$api_url/readyz?verbose" 2>&1 | grep -v '^\[+\]' >&2 || true
		die "kube-apiserver not ready after ${timeout}s"
	fi
	sleep 0.1
done

# --- what clients need ------------------------------------------------------------
cat >"$dir/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: realkube
  cluster:
    server: $api_url
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: realkube
  context:
    cluster: realkube
    user: admin
current-context: realkube
EOF

cat >"$dir/realkube.env.tmp" <<EOF
REALKUBE_URL=$api_url
REALKUBE_PORT=$api_port
REALKUBE_KUBECONFIG=$dir/admin.kubeconfig
REALKUBE_CA=$pki/ca.crt
REALKUBE_ADMIN_CERT=$pki/admin.crt
REALKUBE_ADMIN_KEY=$pki/admin.key
REALKUBE_ISSUER=$issuer
REALKUBE_API_AUDIENCES=$audiences
REALKUBE_ETCD_URL=$etcd_url
REALKUBE_ETCD_PORT=$etcd_port
REALKUBE_ETCD_PEER_PORT=$peer_port
REALKUBE_KUBECTL=$REALKUBE_BIN/kubectl
REALKUBE_VERSION=$K8S_VERSION
REALKUBE_ETCD_VERSION=$ETCD_VERSION
EOF
mv -f "$dir/realkube.env.tmp" "$dir/realkube.env"
ready=1

elapsed_ms=$((($(date +%s%N) - started_at) / 1000000))
say "kube-apiserver $K8S_VERSION ready at $api_url (etcd $ETCD_VERSION at $etcd_url) in ${elapsed_ms} ms; env in $dir/realkube.env"
