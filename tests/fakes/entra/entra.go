// Package entra is the fake Microsoft Entra ID token service and Azure
// Instance Metadata Service (IMDS) of the test world.
//
//	fakes entra --pki DIR --config FILE [--addr 127.0.0.1:0] [--imds-addr 127.0.0.1:0] [--addr-file F]
//
// The Entra endpoints (token, tenant and instance discovery, signing keys)
// and the control API (/_fake/...) are served over HTTPS with the pki's
// server certificate; IMDS over plain HTTP on its own listener. Once both
// listen, their base URLs are written to --addr-file as
// {"entra":"https://127.0.0.1:P","imds":"http://127.0.0.1:Q"}. Access tokens
// are signed with the pki's idp.key. Requests are logged to stderr without
// tokens, assertions or secrets. SIGTERM or SIGINT stops the fake cleanly.
//
// See Config for the configuration file, control.go for the control API and
// faults.go for fault injection.
package entra

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"syscall"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

// Main runs the fake from the command line.
func Main(args []string) error {
	fs := flag.NewFlagSet("entra", flag.ContinueOnError)
	pkiDir := fs.String("pki", "", "test PKI directory (server.crt/key, ca.crt, idp.key)")
	cfgPath := fs.String("config", "", "configuration file (JSON)")
	addr := fs.String("addr", "127.0.0.1:0", "HTTPS listen address for the Entra endpoints and /_fake/")
	imdsAddr := fs.String("imds-addr", "127.0.0.1:0", "plain-HTTP listen address for IMDS (empty: no IMDS)")
	addrFile := fs.String("addr-file", "", "write the chosen base URLs here as JSON once listening")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pkiDir == "" || *cfgPath == "" {
		return errors.New("--pki and --config are required")
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	idpKey, err := pki.LoadKey(filepath.Join(*pkiDir, "idp.key"))
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(*pkiDir, "server.crt"), filepath.Join(*pkiDir, "server.key"))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(*pkiDir, "ca.crt"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("ca.crt: no certificate")
	}
	logger := log.New(os.Stderr, "fakes entra: ", log.LstdFlags|log.Lmicroseconds)
	srv, err := New(Options{
		IDPKey: idpKey,
		Config: cfg,
		HTTPClient: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		},
		Log: logger,
	})
	if err != nil {
		return err
	}

	// Catch the signals before announcing the addresses.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	entraHTTP := &http.Server{
		Handler:           srv.EntraHandler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	addrs := map[string]string{"entra": "https://" + ln.Addr().String()}
	servers := []*http.Server{entraHTTP}
	errc := make(chan error, 2)
	go func() { errc <- entraHTTP.ServeTLS(ln, "", "") }()

	if *imdsAddr != "" {
		iln, err := net.Listen("tcp", *imdsAddr)
		if err != nil {
			return err
		}
		imdsHTTP := &http.Server{Handler: srv.IMDSHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: logger}
		addrs["imds"] = "http://" + iln.Addr().String()
		servers = append(servers, imdsHTTP)
		go func() { errc <- imdsHTTP.Serve(iln) }()
	}
	if *addrFile != "" {
		if err := writeFileAtomic(*addrFile, addrs); err != nil {
			return err
		}
	}
	logger.Printf("listening: entra %s, imds %s (tenant %s)", addrs["entra"], addrs["imds"], cfg.TenantID)

	select {
	case <-ctx.Done():
		logger.Printf("stopping")
	case err := <-errc:
		return err
	}
	srv.Close() // release hanging requests
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
	}
	return nil
}

func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
