package entra

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

// The test PKI is made once for the package (RSA keys are slow to make).
var pkiDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "entra-test-pki-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pkiDir = dir
	if err := pki.Init(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func loadKey(t *testing.T, name string) *rsa.PrivateKey {
	t.Helper()
	k, err := pki.LoadKey(filepath.Join(pkiDir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	tenantID    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	appClientID = "0b5e1f5a-1111-4f6e-9a55-2b2b2b2b2b2b"
	appObjectID = "5c1d7e3e-2222-4c6a-8d1e-3c3c3c3c3c3c"
	kubeIssuer  = "https://kube.test"
	saSubject   = "system:serviceaccount:apps:rotator"
	exchangeAud = "api://AzureADTokenExchange"
	pgScope     = "https://ossrdbms-aad.database.windows.net/.default"
	pgResource  = "https://ossrdbms-aad.database.windows.net"
	miDefault   = "d1d1d1d1-0000-4000-8000-000000000001"
	miDefaultO  = "e1e1e1e1-0000-4000-8000-000000000001"
	miOther     = "d2d2d2d2-0000-4000-8000-000000000002"
	miOtherO    = "e2e2e2e2-0000-4000-8000-000000000002"
	miOtherRes  = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/other"
)

func baseConfig() *Config {
	return &Config{
		TenantID:       tenantID,
		TokenLifetimeS: 3600,
		Issuers:        []IssuerConfig{{Issuer: kubeIssuer, PublicKeyFile: filepath.Join(pkiDir, "sa.pub")}},
		Apps: []App{{
			ClientID: appClientID, ObjectID: appObjectID, DisplayName: "rotator",
			FederatedCredentials: []FederatedCredential{{Issuer: kubeIssuer, Subject: saSubject, Audiences: []string{exchangeAud}}},
		}},
		ManagedIdentities: []ManagedIdentity{
			{ClientID: miDefault, ObjectID: miDefaultO, Default: true},
			{ClientID: miOther, ObjectID: miOtherO, ResourceID: miOtherRes},
		},
	}
}

// syncBuffer collects the fake's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// world is a running fake: Entra over HTTPS, IMDS over HTTP.
type world struct {
	t      *testing.T
	srv    *Server
	entra  *httptest.Server
	imds   *httptest.Server
	client *http.Client // trusts the Entra listener
	log    *syncBuffer
}

func newWorld(t *testing.T, cfg *Config, fetchClient *http.Client) *world {
	t.Helper()
	w := &world{t: t, log: &syncBuffer{}}
	srv, err := New(Options{
		IDPKey:     loadKey(t, "idp"),
		Config:     cfg,
		HTTPClient: fetchClient,
		Log:        log.New(w.log, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.srv = srv
	w.entra = httptest.NewTLSServer(srv.EntraHandler())
	w.imds = httptest.NewServer(srv.IMDSHandler())
	w.client = w.entra.Client()
	w.client.Timeout = 10 * time.Second
	t.Cleanup(func() {
		srv.Close()
		w.entra.Close()
		w.imds.Close()
	})
	return w
}

// assertion makes a service-account token signed by key with the given
// claims on top of valid defaults (claims set to nil are removed).
func assertion(t *testing.T, key *rsa.PrivateKey, over map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{"iss": kubeIssuer, "sub": saSubject, "aud": []string{exchangeAud},
		"iat": now, "nbf": now, "exp": now + 600, "jti": randomB64(8)}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok, err := pki.Sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func tokenForm(assertion string) url.Values {
	return url.Values{
		"client_id":             {appClientID},
		"scope":                 {pgScope},
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {jwtBearer},
		"client_assertion":      {assertion},
	}
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (w *world) do(req *http.Request) answer {
	w.t.Helper()
	resp, err := w.client.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			w.t.Fatalf("%s %s: body %q: %v", req.Method, req.URL, raw, err)
		}
		a.body, _ = v.(map[string]any)
	}
	return a
}

func (w *world) tokenURL(tenant string) string {
	return w.entra.URL + "/" + tenant + "/oauth2/v2.0/token"
}

func (w *world) postToken(form url.Values, hdr ...string) answer {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.tokenURL(tenantID), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return w.do(req)
}

func (w *world) get(url string, hdr ...string) answer {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return w.do(req)
}

func (w *world) imdsToken(query string, hdr ...string) answer {
	w.t.Helper()
	return w.get(w.imds.URL+"/metadata/identity/oauth2/token?"+query, hdr...)
}

// control calls the control API.
func (w *world) control(method, path string, body any) answer {
	w.t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, w.entra.URL+path, rd)
	return w.do(req)
}

func (w *world) addFault(f Fault) {
	w.t.Helper()
	if a := w.control(http.MethodPost, "/_fake/faults", f); a.status != 200 {
		w.t.Fatalf("adding fault: %d %s", a.status, a.raw)
	}
}

// checkAADError checks an Entra error answer: status, error string, code,
// and the shape of the rest.
func checkAADError(t *testing.T, a answer, status int, errStr string, code int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.raw)
	}
	if got := a.body["error"]; got != errStr {
		t.Errorf("error %v, want %s", got, errStr)
	}
	codes, _ := a.body["error_codes"].([]any)
	if len(codes) != 1 || codes[0].(json.Number).String() != fmt.Sprint(code) {
		t.Errorf("error_codes %v, want [%d]", a.body["error_codes"], code)
	}
	desc, _ := a.body["error_description"].(string)
	prefix := fmt.Sprintf("AADSTS%d: ", code)
	if !strings.HasPrefix(desc, prefix) || !strings.Contains(desc, "\r\nTrace ID: ") ||
		!strings.Contains(desc, "\r\nCorrelation ID: ") || !strings.Contains(desc, "\r\nTimestamp: ") {
		t.Errorf("error_description %q lacks Entra's shape", desc)
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id", "error_uri"} {
		if s, _ := a.body[k].(string); s == "" {
			t.Errorf("%s missing", k)
		}
	}
	if _, err := time.Parse("2006-01-02 15:04:05Z", a.body["timestamp"].(string)); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	if !guidRE.MatchString(a.body["trace_id"].(string)) {
		t.Errorf("trace_id %v is not a GUID", a.body["trace_id"])
	}
}

func claimInt(t *testing.T, c map[string]any, k string) int64 {
	t.Helper()
	n, ok := numClaim(c[k])
	if !ok {
		t.Fatalf("claim %s = %v is not a number", k, c[k])
	}
	return n
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("%v (%T) is not a JSON number", v, v)
	return 0
}
