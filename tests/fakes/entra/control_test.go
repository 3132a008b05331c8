package entra

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestConfigUpdate(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	sa := loadKey(t, "sa")
	if a := w.postToken(tokenForm(assertion(t, sa, nil))); num(t, a.body["expires_in"]) != 3600 {
		t.Fatalf("%s", a.raw)
	}
	cfg := baseConfig()
	cfg.TokenLifetimeS = 120
	cfg.Apps[0].FederatedCredentials[0].Subject = "system:serviceaccount:apps:renamed"
	if a := w.control(http.MethodPut, "/_fake/config", cfg); a.status != 200 {
		t.Fatalf("PUT config: %d %s", a.status, a.raw)
	}
	checkAADError(t, w.postToken(tokenForm(assertion(t, sa, nil))), 401, "invalid_client", 700213)
	a := w.postToken(tokenForm(assertion(t, sa, map[string]any{"sub": "system:serviceaccount:apps:renamed"})))
	if a.status != 200 || num(t, a.body["expires_in"]) != 120 {
		t.Errorf("after update: %d %s", a.status, a.raw)
	}
	if a := w.imdsToken(imdsQuery, "Metadata", "true"); a.body["expires_in"] != "120" {
		t.Errorf("IMDS lifetime follows token_lifetime_s when imds_token_lifetime_s is unset: %s", a.raw)
	}

	for _, bad := range []string{`{"tenant_id":""}`, `{"tenant_id":"t","token_lifetim_s":5}`, `not json`,
		`{"tenant_id":"t","issuers":[{"issuer":"x"}]}`, `{"tenant_id":"t","federation_errors":"loud"}`} {
		if a := w.control(http.MethodPut, "/_fake/config", bad); a.status != 400 {
			t.Errorf("%s accepted: %d", bad, a.status)
		}
	}
	got := w.control(http.MethodGet, "/_fake/config", nil)
	if got.status != 200 || num(t, got.body["token_lifetime_s"]) != 120 {
		t.Errorf("GET config after rejected PUTs: %s", got.raw)
	}
}

func TestRequestsAndStats(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	w.postToken(tokenForm(assertion(t, loadKey(t, "sa"), nil)), "x-client-SKU", "MSAL.Python", "Authorization", "Bearer secret")
	w.imdsToken(imdsQuery, "Metadata", "true")
	w.imdsToken(imdsQuery)
	w.control(http.MethodGet, "/_fake/health", nil) // the control API is not recorded

	var all []Record
	a := w.control(http.MethodGet, "/_fake/requests", nil)
	if err := json.Unmarshal(a.raw, &all); err != nil || len(all) != 3 {
		t.Fatalf("requests: %v %s", err, a.raw)
	}
	if all[0].Headers["x-client-SKU"] != "MSAL.Python" || all[0].Headers["Authorization"] != "<present>" ||
		strings.Contains(string(a.raw), "Bearer secret") {
		t.Errorf("headers %v", all[0].Headers)
	}
	if all[1].Query["resource"] != pgResource || all[1].Headers["Metadata"] != "true" || all[1].Issued == nil {
		t.Errorf("imds record %+v", all[1])
	}
	var imds []Record
	json.Unmarshal(w.control(http.MethodGet, "/_fake/requests?endpoint=imds&since=2", nil).raw, &imds)
	if len(imds) != 1 || imds[0].Seq != 3 || imds[0].Status != 400 || imds[0].Error != "bad_request_102" {
		t.Errorf("filtered: %+v", imds)
	}

	var st Stats
	json.Unmarshal(w.control(http.MethodGet, "/_fake/stats", nil).raw, &st)
	if st.Total != 3 || st.Endpoints["token"]["200"] != 1 || st.Endpoints["imds"]["200"] != 1 || st.Endpoints["imds"]["400"] != 1 || st.Endpoints["imds"]["total"] != 2 {
		t.Errorf("stats %+v", st)
	}

	if a := w.control(http.MethodDelete, "/_fake/requests", nil); a.status != 204 || len(w.srv.Requests("", 0)) != 0 {
		t.Errorf("DELETE requests: %d", a.status)
	}
	if w.srv.Stats().Total != 3 {
		t.Error("DELETE /_fake/requests must not reset the stats")
	}
	w.control(http.MethodDelete, "/_fake/stats", nil)
	if w.srv.Stats().Total != 0 {
		t.Error("DELETE /_fake/stats did not reset")
	}
	w.addFault(Fault{Endpoint: "token", Status: 500})
	w.imdsToken(imdsQuery, "Metadata", "true")
	if a := w.control(http.MethodPost, "/_fake/reset", nil); a.status != 204 {
		t.Errorf("reset: %d", a.status)
	}
	if len(w.srv.Faults())+len(w.srv.Requests("", 0))+w.srv.Stats().Total != 0 {
		t.Error("reset left state behind")
	}
	if a := w.control(http.MethodGet, "/_fake/nothing", nil); a.status != 404 {
		t.Errorf("unknown control route: %d", a.status)
	}

	// Only loopback clients may use the control API.
	rr := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/_fake/stats", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	w.srv.EntraHandler().ServeHTTP(rr, req)
	if rr.Code != 403 {
		t.Errorf("non-loopback control request: %d", rr.Code)
	}
}

// TestMainCLI runs the command as the tests will: real listeners, the pki
// certificate, the address file, and a clean stop on SIGTERM.
func TestMainCLI(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := json.Marshal(baseConfig())
	cfgPath := filepath.Join(dir, "config.json")
	os.WriteFile(cfgPath, cfg, 0o644)
	addrFile := filepath.Join(dir, "addr.json")

	done := make(chan error, 1)
	go func() {
		done <- Main([]string{"--pki", pkiDir, "--config", cfgPath, "--addr", "127.0.0.1:0", "--imds-addr", "127.0.0.1:0", "--addr-file", addrFile})
	}()
	var addrs map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(addrFile)
		if err == nil && json.Unmarshal(b, &addrs) == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Main returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no address file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(addrs["entra"], "https://127.0.0.1:") || !strings.HasPrefix(addrs["imds"], "http://127.0.0.1:") {
		t.Fatalf("addresses %v", addrs)
	}

	caPEM, _ := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.PostForm(addrs["entra"]+"/"+tenantID+"/oauth2/v2.0/token", tokenForm(assertion(t, loadKey(t, "sa"), nil)))
	if err != nil {
		t.Fatalf("token request over the pki certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, addrs["imds"]+"/metadata/identity/oauth2/token?"+imdsQuery, nil)
	req.Header.Set("Metadata", "true")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("imds: %d", resp.StatusCode)
	}

	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Main: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not stop on SIGTERM")
	}
}
