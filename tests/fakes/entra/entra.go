// Package entra is the fake Entra ID token endpoint and IMDS (being written).
package entra

import "errors"

// Main runs the fake from the command line.
func Main(args []string) error { return errors.New("not implemented yet") }
