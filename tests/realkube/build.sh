#!/usr/bin/env bash
# Builds the real Kubernetes tier: kube-apiserver and kubectl (from
# k8s.io/kubernetes and its staging modules, see go.mod) and etcd (from
# go.etcd.io/etcd/server/v3, see etcd/go.mod), with the installed Go and the
# Go module proxy. Binaries go to .cache/realkube/<kubernetes version>/bin/.
#
#   tests/realkube/build.sh            build what is missing or stale
#   tests/realkube/build.sh --print-bin   print the binary folder and exit
#
# A binary is rebuilt only when its inputs changed (go.mod, go.sum, main.go,
# Go version, flags): a second run does not start Go at all.
# Exit codes: 0 built or up to date; 3 cannot build here (no Go, Go too old,
# no module proxy, no disk space); 1 any other error (e.g. compile error).
set -euo pipefail
trap 'echo "realkube build: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

source "$(dirname "$0")/env.sh"

cannot_build() {
	echo "realkube build: cannot build here: $*" >&2
	exit 3
}
say() { echo "realkube build: $*" >&2; }

if [[ ${1:-} == --print-bin ]]; then
	echo "$REALKUBE_BIN"
	exit 0
fi
[[ $# -eq 0 ]] || { echo "usage: $0 [--print-bin]" >&2; exit 1; }

# --- can we build here? -----------------------------------------------------
command -v go >/dev/null || cannot_build "no Go toolchain (looked in /usr/local/go/bin and PATH)"
go_have=$(go env GOVERSION) || cannot_build "'go env GOVERSION' failed"
go_have=${go_have#go}
go_have=${go_have%% *}
for mod in "$realkube_root/go.mod" "$realkube_root/etcd/go.mod"; do
	go_need=$(awk '$1 == "go" {print $2; exit}' "$mod")
	if [[ $(printf '%s\n%s\n' "$go_need" "$go_have" | sort -V | head -n1) != "$go_need" ]]; then
		cannot_build "Go $go_have is too old: ${mod#"$project_root/"} needs Go >= $go_need" \
			"(Kubernetes $K8S_VERSION, etcd $ETCD_VERSION)"
	fi
done
if [[ -z $K8S_VERSION || -z $ETCD_VERSION ]]; then
	echo "realkube build: cannot read the versions from the go.mod files" >&2
	exit 1
fi

mkdir -p "$REALKUBE_BIN" "$GOPATH" "$GOCACHE"
exec 9>"$REALKUBE_BIN/.build.lock"
flock 9 # one build at a time per binary folder

# --- what each binary is built from ----------------------------------------
# name|module dir|package
targets=(
	"kube-apiserver|$realkube_root|./cmd/kube-apiserver"
	"kubectl|$realkube_root|./cmd/kubectl"
	"etcd|$realkube_root/etcd|."
)

ldflags_of() { # name: the linker flags (-s -w: no symbol tables, a third smaller)
	[[ $1 == etcd ]] && { echo "-s -w"; return; }
	# Without these, kube-apiserver and kubectl call themselves v0.0.0-master.
	# buildDate is the release's date from the module proxy, so the binary does
	# not depend on when it was built.
	local minor=${K8S_VERSION#v1.} date pkg flags="-s -w"
	minor=${minor%%.*}
	date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$GOPATH/pkg/mod/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.info" 2>/dev/null)
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
	done
	echo "$flags"
}

stamp_of() { # name, module dir, package: a hash of every input of the build
	local name=$1 dir=$2 pkg=$3
	{
		go version
		declare -f ldflags_of
		echo "$name $K8S_VERSION $ETCD_VERSION"
		cat "$dir/go.mod" "$dir/go.sum" "$dir/$pkg"/*.go
	} | sha256sum | cut -d' ' -f1
}

up_to_date() { # name, module dir, package
	[[ -x $REALKUBE_BIN/$1 && $(cat "$REALKUBE_BIN/.$1.stamp" 2>/dev/null) == "$(stamp_of "$@")" ]]
}

# --- fetch modules first, so a missing proxy is told apart from a bad build --
fetched=" "
for t in "${targets[@]}"; do
	IFS='|' read -r name dir pkg <<<"$t"
	up_to_date "$name" "$dir" "$pkg" && continue
	[[ $fetched == *" $dir "* ]] && continue
	free_kb=$(df -Pk "$GOPATH" | awk 'NR == 2 {print $4}')
	((free_kb > 6 * 1024 * 1024)) || cannot_build "less than 6 GiB free under $GOPATH (a cold build needs about 4 GiB)"
	say "fetching Go modules for ${dir#"$project_root/"} (into $GOPATH/pkg/mod)"
	(cd "$dir" && go mod download) ||
		cannot_build "could not fetch the Go modules of ${dir#"$project_root/"} (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
	fetched+="$dir "
done

# --- build what is missing or stale -----------------------------------------
built=0
for t in "${targets[@]}"; do
	IFS='|' read -r name dir pkg <<<"$t"
	up_to_date "$name" "$dir" "$pkg" && continue
	case $name in
	etcd) what="etcd $ETCD_VERSION" ;;
	*) what="$name $K8S_VERSION" ;;
	esac
	note=""
	[[ $name == kube-apiserver ]] && note=" (about 10 minutes with a cold Go cache, 2 cores)"
	say "building $what -> $REALKUBE_BIN/$name$note"
	start=$SECONDS
	rm -f "$REALKUBE_BIN/.$name.stamp"
	(cd "$dir" && go build -trimpath -ldflags "$(ldflags_of "$name")" -o "$REALKUBE_BIN/.$name.tmp" "$pkg") || {
		echo "realkube build: building $what failed" >&2
		exit 1
	}
	mv -f "$REALKUBE_BIN/.$name.tmp" "$REALKUBE_BIN/$name"
	stamp_of "$name" "$dir" "$pkg" >"$REALKUBE_BIN/.$name.stamp"
	say "built $what in $((SECONDS - start)) s"
	built=$((built + 1))
done
if ((built == 0)); then
	say "up to date: kube-apiserver and kubectl $K8S_VERSION, etcd $ETCD_VERSION in $REALKUBE_BIN"
fi
