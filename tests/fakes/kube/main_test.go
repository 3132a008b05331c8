package kube

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMainCLI runs Main as `fakes kube` does: addr file, kubeconfig, SIGTERM.
func TestMainCLI(t *testing.T) {
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr.json")
	tokens := filepath.Join(dir, "tokens.csv")
	os.WriteFile(tokens, []byte("t1,carol,uid-c,\"a,b\"\n"), 0o600)
	done := make(chan error, 1)
	go func() {
		done <- Main([]string{"--pki", pkiDir, "--addr", "127.0.0.1:0", "--addr-file", addrFile, "--tokens", tokens, "--history", "50"})
	}()
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		if time.Now().After(deadline) {
			t.Fatal("no addr file")
		}
		if b, err := os.ReadFile(addrFile); err == nil {
			var a struct{ URL string }
			if json.Unmarshal(b, &a) == nil {
				url = a.URL
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("url %q", url)
	}
	kc, err := os.ReadFile(filepath.Join(dir, "admin.kubeconfig"))
	if err != nil || !strings.Contains(string(kc), url) || !strings.Contains(string(kc), "client-certificate-data") {
		t.Fatalf("kubeconfig: %v\n%s", err, kc)
	}
	caPEM, _ := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", url+"/api/v1/namespaces/default/secrets", nil)
	req.Header.Set("Authorization", "Bearer t1")
	res, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if err := Main([]string{"--pki", pkiDir, "--addr", "10.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a non-loopback address must be refused: %v", err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Main: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not exit on SIGTERM")
	}
}
