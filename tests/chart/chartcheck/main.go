// chartcheck renders charts/pgtoken-rotator with helm and checks the objects
// that matter: security contexts, RBAC (against manifests/rbac.yaml), workload
// identity, the config and its checksum, namespaced mode, every option, and
// that the plain manifests are the same objects. It prints TAP lines
// ("ok - NAME", "not ok - NAME: WHY") and exits 1 when one fails.
//
//	chartcheck -root DIR -helm HELM [-bin pgtoken-rotator] [-only chart|manifests|binary]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type checker struct {
	root, chart, helm, bin string
	failed                 int
}

func (c *checker) run(name string, f func() error) {
	defer func() {
		if r := recover(); r != nil {
			c.failed++
			fmt.Printf("not ok - %s: panic: %v\n", name, r)
		}
	}()
	if err := f(); err != nil {
		c.failed++
		fmt.Printf("not ok - %s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", " | "))
		return
	}
	fmt.Printf("ok - %s\n", name)
}

func main() {
	root := flag.String("root", ".", "project root")
	helm := flag.String("helm", "", "helm binary")
	bin := flag.String("bin", "", "pgtoken-rotator binary (for the config checks)")
	only := flag.String("only", "", "chart, manifests or binary (default: all)")
	flag.Parse()
	abs, err := filepath.Abs(*root)
	if err != nil || *helm == "" {
		fmt.Fprintln(os.Stderr, "usage: chartcheck -root DIR -helm HELM [-bin BIN] [-only GROUP]")
		os.Exit(2)
	}
	c := &checker{root: abs, chart: filepath.Join(abs, "charts/pgtoken-rotator"), helm: *helm}
	if *bin != "" {
		if c.bin, err = filepath.Abs(*bin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if *only == "" || *only == "chart" {
		c.chartChecks()
	}
	if *only == "" || *only == "manifests" {
		c.manifestChecks()
	}
	if (*only == "" || *only == "binary") && c.bin != "" {
		c.binaryChecks()
	}
	if c.failed > 0 {
		os.Exit(1)
	}
}
