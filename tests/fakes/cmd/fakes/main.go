// Command fakes runs the test world's fake services and tools:
//
//	fakes pki --dir D                     make the test PKI in D (see package pki)
//	fakes jwt --key K [--claims JSON] [--ttl S] [--set k=v ...]   print a signed JWT
//	fakes entra ...                       fake Entra ID token endpoint and IMDS
//	fakes kube ...                        fake Kubernetes API server
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"pgtoken-rotator/tests/fakes/entra"
	"pgtoken-rotator/tests/fakes/kube"
	"pgtoken-rotator/tests/fakes/pki"
)

var commands = map[string]func(args []string) error{
	"pki":   cmdPKI,
	"jwt":   cmdJWT,
	"entra": entra.Main,
	"kube":  kube.Main,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: fakes {pki|jwt|entra|kube} [flags]")
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "fakes %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func cmdPKI(args []string) error {
	fs := flag.NewFlagSet("pki", flag.ExitOnError)
	dir := fs.String("dir", "", "directory to fill")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("--dir is required")
	}
	return pki.Init(*dir)
}

type kvList []string

func (l *kvList) String() string     { return strings.Join(*l, ",") }
func (l *kvList) Set(v string) error { *l = append(*l, v); return nil }

// cmdJWT prints a JWT signed by --key. Claims come from --claims (a JSON
// object) then --set k=v (numbers stay numbers; "@+N"/"@-N" is now plus/minus
// N seconds). --ttl sets iat/nbf to now and exp to now+ttl unless given.
func cmdJWT(args []string) error {
	fs := flag.NewFlagSet("jwt", flag.ExitOnError)
	keyPath := fs.String("key", "", "RSA private key (PEM)")
	claimsJSON := fs.String("claims", "{}", "claims as a JSON object")
	ttl := fs.Int("ttl", 3600, "lifetime in seconds for exp when exp is not given")
	var sets kvList
	fs.Var(&sets, "set", "claim k=v (repeatable)")
	fs.Parse(args)
	key, err := pki.LoadKey(*keyPath)
	if err != nil {
		return err
	}
	claims := map[string]any{}
	if err := json.Unmarshal([]byte(*claimsJSON), &claims); err != nil {
		return fmt.Errorf("--claims: %v", err)
	}
	now := time.Now().Unix()
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("--set %q: want k=v", s)
		}
		switch {
		case strings.HasPrefix(v, "@+") || strings.HasPrefix(v, "@-"):
			n, err := strconv.ParseInt(v[1:], 10, 64)
			if err != nil {
				return fmt.Errorf("--set %q: %v", s, err)
			}
			claims[k] = now + n
		default:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				claims[k] = n
			} else {
				claims[k] = v
			}
		}
	}
	for k, v := range map[string]int64{"iat": now, "nbf": now, "exp": now + int64(*ttl)} {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	tok, err := pki.Sign(key, claims)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}
