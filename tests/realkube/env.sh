# Sourced by the realkube scripts: where Go, its caches and the binaries live.
# Everything goes under the project's ignored .cache/ folder.
realkube_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project_root=$(cd "$realkube_root/../.." && pwd)

export PATH="/usr/local/go/bin:$PATH"
export GOPATH="${REALKUBE_GOPATH:-$project_root/.cache/go}"
export GOCACHE="${REALKUBE_GOCACHE:-$GOPATH/build}"
export GOFLAGS=-modcacherw
# Use exactly the installed Go: never let a go.mod download another toolchain.
export GOTOOLCHAIN=local
