// Package kube is the fake Kubernetes API server (being written).
package kube

import "errors"

// Main runs the fake from the command line.
func Main(args []string) error { return errors.New("not implemented yet") }
