#!/usr/bin/env bash
# Stops what start.sh started in DIR: kube-apiserver, then etcd.
#
#   tests/realkube/stop.sh DIR                   stop both
#   tests/realkube/stop.sh DIR kube-apiserver    stop one (or: etcd)
#
# Each gets SIGTERM, then SIGKILL after REALKUBE_STOP_GRACE seconds (default 10).
# Idempotent: a part that is not running (or a DIR that does not exist) is fine.
# Leaves the data and logs in DIR; exits non-zero only if a process survives.
set -euo pipefail
trap 'echo "realkube stop: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

source "$(dirname "$0")/env.sh"

say() { echo "realkube stop: $*" >&2; }

[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 DIR [kube-apiserver|etcd]" >&2; exit 1; }
dir=$1
grace=${REALKUBE_STOP_GRACE:-10}
case ${2:-all} in
all) parts=(kube-apiserver etcd) ;; # the API server first: it needs etcd to shut down cleanly
kube-apiserver | etcd) parts=("$2") ;;
*) echo "usage: $0 DIR [kube-apiserver|etcd]" >&2; exit 1 ;;
esac
[[ -d $dir ]] || exit 0

wait_gone() { # pid, name, seconds
	local deadline=$((SECONDS + $3))
	while realkube_alive "$1" "$2"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

status=0
for name in "${parts[@]}"; do
	pid_file=$dir/$name.pid
	[[ -f $pid_file ]] || continue
	pid=$(cat "$pid_file")
	if [[ $pid =~ ^[0-9]+$ ]] && realkube_alive "$pid" "$name"; then
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$pid" "$name" "$grace"; then
			say "$name (pid $pid) still running ${grace}s after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			if ! wait_gone "$pid" "$name" 5; then
				say "$name (pid $pid) survived SIGKILL"
				status=1
				continue
			fi
		fi
		say "stopped $name (pid $pid)"
	fi
	rm -f "$pid_file"
done
exit "$status"
