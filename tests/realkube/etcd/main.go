// Command etcd is the upstream etcd server, built from go.etcd.io/etcd/server/v3
// as a Go module (see go.mod): the same entry point as etcd's own main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
