# Sourced by the realkube scripts: where Go, its caches and the binaries live.
# Everything goes under the project's ignored .cache/ folder.
#
# Overrides (for measuring or for a second copy):
#   REALKUBE_GOPATH   Go's GOPATH (default: <project>/.cache/go); GOCACHE is $GOPATH/build
#   REALKUBE_OUT      root of the binary folders (default: <project>/.cache/realkube)
#   REALKUBE_BIN      the folder with kube-apiserver, etcd, kubectl
#                     (default: $REALKUBE_OUT/<kubernetes version>/bin)
realkube_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project_root=$(cd "$realkube_root/../.." && pwd)

# The Go on PATH (tests/deps.sh --env puts a new enough one first), else the usual place.
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
export GOPATH="${REALKUBE_GOPATH:-$project_root/.cache/go}"
export GOCACHE="${REALKUBE_GOCACHE:-$GOPATH/build}"
export GOFLAGS=-modcacherw
# Use exactly the installed Go: never let a go.mod make it download a toolchain.
export GOTOOLCHAIN=local

# The versions are those the go.mod files pin (the single source of truth).
realkube_required() { # FILE MODULE: the version FILE's require line gives MODULE
	awk -v m="$2" '$1 == "require" { $1 = "" ; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1"
}
K8S_VERSION=$(realkube_required "$realkube_root/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(realkube_required "$realkube_root/etcd/go.mod" go.etcd.io/etcd/server/v3)
REALKUBE_OUT="${REALKUBE_OUT:-$project_root/.cache/realkube}"
REALKUBE_BIN="${REALKUBE_BIN:-$REALKUBE_OUT/$K8S_VERSION/bin}"

# Is PID alive and running the program NAME? A zombie is not alive, and a pid
# that was reused by another program is not ours.
realkube_alive() {
	local stat comm=${2:0:15} # the kernel keeps 15 characters of a program's name
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	[[ $stat == "$1 ($comm) "* && $stat != "$1 ($comm) Z "* ]]
}
