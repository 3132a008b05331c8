// Command kube-apiserver is the upstream kube-apiserver, built from
// k8s.io/kubernetes as a Go module (see ../../go.mod). The body is a copy of
// k8s.io/kubernetes/cmd/kube-apiserver/apiserver.go, which is a main package
// and so cannot be imported.
package main

import (
	"os"
	_ "time/tzdata" // for timeZone support in CronJob

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // load all the prometheus client-go plugins
	_ "k8s.io/component-base/metrics/prometheus/version"  // for version metric registration
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
