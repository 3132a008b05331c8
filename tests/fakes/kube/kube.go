// Package kube is the fake Kubernetes API server of the test world: an
// in-memory kube-apiserver for Secrets, Namespaces, ServiceAccounts (with
// TokenRequest), ConfigMaps, Events (core and events.k8s.io), Leases,
// Deployments and StatefulSets, speaking the real server's JSON wire format.
//
//	fakes kube --pki DIR --addr 127.0.0.1:0 --addr-file F --tokens FILE
//	           [--issuer https://kube.test] [--history N] [--kubeconfig-out PATH]
//	           [--bookmark-interval 60s] [--min-request-timeout 1800s]
//	           [--namespaces a,b] [--lenient-sa-tokens] [--server-version v1.37.2]
//	           [--api-audiences a,b] [--anonymous-auth] [--finalize-namespaces]
//
// It serves HTTPS with DIR/server.crt and writes {"url":"https://127.0.0.1:P"}
// to F once listening, and an admin kubeconfig (client certificate DIR/admin.crt)
// to F's directory as admin.kubeconfig (or --kubeconfig-out).
//
// Authentication: bearer tokens from --tokens (kube-apiserver's
// --token-auth-file CSV: token,user,uid,"group1,group2"), client certificates
// signed by DIR/ca.crt (CN=user, O=groups), and service account tokens it
// issued itself through TokenRequest (RS256 by DIR/sa.key). No (valid)
// credentials: 401, as kube-apiserver with --anonymous-auth=false (with
// --anonymous-auth: system:anonymous, 403 outside the public paths).
// Authorization: every authenticated user may do everything (no RBAC); a 403
// comes only from a fault switch, worded like the RBAC denial.
//
// The control API under /_fake/ needs no credentials (it is served on the same
// loopback-only HTTPS listener): faults, drop-watches, compact, restart,
// requests, stats, config, tokens. See README.md beside this file.
package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

// Config starts a fake API server.
type Config struct {
	PKIDir            string
	Addr              string // loopback host:port; default 127.0.0.1:0
	TokensFile        string
	Issuer            string // default https://kube.test
	History           int    // watch history kept per resource; default 1000
	BookmarkInterval  time.Duration
	MinRequestTimeout time.Duration
	Namespaces        []string
	LenientSATokens   bool
	// FinalizeNamespaces: deleting a namespace removes it and its content at
	// once, as if the namespace controller ran (a bare kube-apiserver leaves it
	// Terminating until its finalizers are removed through /finalize).
	FinalizeNamespaces bool
	APIAudiences       []string // default: the issuer
	AnonymousAuth      bool     // as kube-apiserver --anonymous-auth=true with default RBAC
	ServerVersion      string
	Log                *log.Logger
}

// Instance is a running fake.
type Instance struct {
	URL    string
	Server *Server
	http   *http.Server
	done   chan error
}

// Start listens and serves in the background.
func Start(cfg Config) (*Instance, error) {
	if cfg.PKIDir == "" {
		return nil, errors.New("--pki is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %v", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--addr %q: only loopback addresses are allowed", cfg.Addr)
	}
	if cfg.History == 0 {
		cfg.History = 1000
	}
	sv := newServer(cfg.History)
	if cfg.Issuer != "" {
		sv.issuer = cfg.Issuer
	}
	if cfg.ServerVersion != "" {
		sv.version = cfg.ServerVersion
	}
	if cfg.BookmarkInterval > 0 {
		sv.ctl.bookmark = cfg.BookmarkInterval
	}
	if cfg.MinRequestTimeout > 0 {
		sv.minTimeout = cfg.MinRequestTimeout
	}
	sv.lenientSA = cfg.LenientSATokens
	sv.anonymous = cfg.AnonymousAuth
	sv.finalizeNS = cfg.FinalizeNamespaces
	for _, a := range cfg.APIAudiences {
		if a = strings.TrimSpace(a); a != "" {
			sv.audiences = append(sv.audiences, a)
		}
	}
	for _, ns := range cfg.Namespaces {
		if ns = strings.TrimSpace(ns); ns != "" {
			sv.ensureNamespace(ns)
		}
	}
	if sv.tokens, err = loadTokens(cfg.TokensFile); err != nil {
		return nil, err
	}
	ca, err := pki.LoadCA(cfg.PKIDir)
	if err != nil {
		return nil, err
	}
	sv.caPool = x509.NewCertPool()
	sv.caPool.AddCert(ca.Cert)
	if sv.saKey, err = pki.LoadKey(filepath.Join(cfg.PKIDir, "sa.key")); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(cfg.PKIDir, "server.crt"), filepath.Join(cfg.PKIDir, "server.key"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	sv.addr = ln.Addr().String()
	errLog := cfg.Log
	if errLog == nil {
		errLog = log.New(os.Stderr, "fakes kube: ", log.LstdFlags)
	}
	hs := &http.Server{
		Handler:           sv,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          errLog,
	}
	inst := &Instance{URL: "https://" + sv.addr, Server: sv, http: hs, done: make(chan error, 1)}
	go func() {
		err := hs.ServeTLS(ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		inst.done <- err
	}()
	return inst, nil
}

// Close ends watches and shuts the server down.
func (in *Instance) Close() error {
	in.Server.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := in.http.Shutdown(ctx)
	if err != nil {
		in.http.Close()
	}
	if e := <-in.done; e != nil && err == nil {
		err = e
	}
	return err
}

// Kubeconfig renders a kubeconfig for the client certificate DIR/NAME.crt.
func Kubeconfig(url, pkiDir, name string) ([]byte, error) {
	read := func(f string) (string, error) {
		b, err := os.ReadFile(filepath.Join(pkiDir, f))
		return base64.StdEncoding.EncodeToString(b), err
	}
	ca, err := read("ca.crt")
	if err != nil {
		return nil, err
	}
	crt, err := read(name + ".crt")
	if err != nil {
		return nil, err
	}
	key, err := read(name + ".key")
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: fake
  context:
    cluster: fake
    user: %s
    namespace: default
current-context: fake
`, url, ca, name, crt, key, name)), nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Main runs the fake from the command line.
func Main(args []string) error {
	fs := flag.NewFlagSet("kube", flag.ContinueOnError)
	var cfg Config
	fs.StringVar(&cfg.PKIDir, "pki", "", "PKI directory made by `fakes pki`")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "listen address (loopback only)")
	addrFile := fs.String("addr-file", "", "write {\"url\":...} here once listening")
	fs.StringVar(&cfg.TokensFile, "tokens", "", "static token file (token,user,uid,\"g1,g2\")")
	fs.StringVar(&cfg.Issuer, "issuer", "https://kube.test", "service account token issuer (and API audience)")
	fs.IntVar(&cfg.History, "history", 1000, "watch events kept per resource before old resourceVersions expire")
	kcOut := fs.String("kubeconfig-out", "", "admin kubeconfig path (default: admin.kubeconfig beside --addr-file)")
	fs.DurationVar(&cfg.BookmarkInterval, "bookmark-interval", time.Minute, "how often watches with allowWatchBookmarks get a BOOKMARK")
	fs.DurationVar(&cfg.MinRequestTimeout, "min-request-timeout", 1800*time.Second, "watches without timeoutSeconds last this to twice this long")
	nss := fs.String("namespaces", "", "comma-separated namespaces to create at start")
	fs.BoolVar(&cfg.LenientSATokens, "lenient-sa-tokens", false, "accept SA tokens signed by sa.key even when the ServiceAccount does not exist")
	fs.StringVar(&cfg.ServerVersion, "server-version", "v1.37.2", "version reported at /version")
	fs.BoolVar(&cfg.FinalizeNamespaces, "finalize-namespaces", false, "remove a deleted namespace and its content at once (as the namespace controller would); default: it stays Terminating like on a bare kube-apiserver")
	auds := fs.String("api-audiences", "", "comma-separated API audiences (default: the issuer)")
	fs.BoolVar(&cfg.AnonymousAuth, "anonymous-auth", false, "treat requests without credentials as system:anonymous (403 except /version, /healthz, /livez, /readyz, OIDC discovery) instead of 401")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nss != "" {
		cfg.Namespaces = strings.Split(*nss, ",")
	}
	if *auds != "" {
		cfg.APIAudiences = strings.Split(*auds, ",")
	}
	inst, err := Start(cfg)
	if err != nil {
		return err
	}
	// catch SIGTERM before telling anyone the address
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	kc := *kcOut
	if kc == "" && *addrFile != "" {
		kc = filepath.Join(filepath.Dir(*addrFile), "admin.kubeconfig")
	}
	if kc != "" {
		b, err := Kubeconfig(inst.URL, cfg.PKIDir, "admin")
		if err != nil {
			inst.Close()
			return err
		}
		if err := writeFileAtomic(kc, b, 0o600); err != nil {
			inst.Close()
			return err
		}
	}
	if *addrFile != "" {
		b, _ := json.Marshal(map[string]string{"url": inst.URL})
		if err := writeFileAtomic(*addrFile, append(b, '\n'), 0o644); err != nil {
			inst.Close()
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "fakes kube: serving %s\n", inst.URL)
	select {
	case <-sig:
	case err := <-inst.done:
		inst.done <- err
	}
	return inst.Close()
}
