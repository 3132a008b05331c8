package entra

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

func TestTokenSuccess(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	sa := loadKey(t, "sa")
	as := assertion(t, sa, nil)
	before := time.Now().Unix()
	a := w.postToken(tokenForm(as), "client-request-id", "0f0f0f0f-1111-4222-8333-444444444444", "return-client-request-id", "true")
	after := time.Now().Unix()
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	if a.body["token_type"] != "Bearer" || num(t, a.body["expires_in"]) != 3600 || num(t, a.body["ext_expires_in"]) != 3600 {
		t.Errorf("answer %s", a.raw)
	}
	if a.header.Get("client-request-id") != "0f0f0f0f-1111-4222-8333-444444444444" {
		t.Errorf("client-request-id not echoed: %v", a.header)
	}
	if a.header.Get("Cache-Control") != "no-store, no-cache" {
		t.Errorf("Cache-Control %q", a.header.Get("Cache-Control"))
	}
	tok := a.body["access_token"].(string)
	claims, err := pki.Verify(tok, &loadKey(t, "idp").PublicKey)
	if err != nil {
		t.Fatalf("access token does not verify with idp.key: %v", err)
	}
	want := map[string]string{
		"aud": pgResource, "iss": "https://sts.windows.net/" + tenantID + "/", "idp": "https://sts.windows.net/" + tenantID + "/",
		"tid": tenantID, "oid": appObjectID, "sub": appObjectID, "appid": appClientID, "appidacr": "2",
		"idtyp": "app", "ver": "1.0",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %s", k, claims[k], v)
		}
	}
	if _, ok := claims["azp"]; ok {
		t.Error("v1.0 tokens carry appid, not azp")
	}
	if s, _ := claims["uti"].(string); s == "" {
		t.Error("uti missing")
	}
	iat, nbf, exp := claimInt(t, claims, "iat"), claimInt(t, claims, "nbf"), claimInt(t, claims, "exp")
	if exp < before+3600 || exp > after+3600 {
		t.Errorf("exp %d not now+3600 (%d..%d)", exp, before+3600, after+3600)
	}
	if iat != nbf || iat < before-300 || iat > after-300 {
		t.Errorf("iat %d / nbf %d: want now-300 (Entra backdates 5 minutes)", iat, nbf)
	}

	// The record holds the claims and hash, never the raw tokens.
	recs := w.srv.Requests("token", 0)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Status != 200 || r.Issued == nil || r.Issued.SHA256 != TokenSHA256(tok) {
		t.Errorf("record %+v", r)
	}
	if r.Assertion == nil || r.Assertion.Claims["sub"] != saSubject || r.Assertion.Header["alg"] != "RS256" {
		t.Errorf("assertion not recorded decoded: %+v", r.Assertion)
	}
	if r.Form["client_id"] != appClientID || r.Form["scope"] != pgScope || r.Form["client_assertion"] != "" {
		t.Errorf("form %v", r.Form)
	}
	if strings.Join(r.FormFields, ",") != "client_assertion,client_assertion_type,client_id,grant_type,scope" {
		t.Errorf("form fields %v", r.FormFields)
	}
	everything, _ := json.Marshal(w.srv.Requests("", 0))
	for _, secret := range []string{as, tok, strings.Split(as, ".")[2], strings.Split(tok, ".")[2]} {
		if strings.Contains(string(everything), secret) || strings.Contains(w.log.String(), secret) {
			t.Error("a token leaked into the records or the log")
		}
	}
}

func TestTokenLifetimeAndJitter(t *testing.T) {
	cfg := baseConfig()
	cfg.TokenLifetimeS = 600
	cfg.TokenLifetimeJitterS = 30
	zero := 0
	cfg.BackdateS = &zero
	w := newWorld(t, cfg, nil)
	sa := loadKey(t, "sa")
	for i := 0; i < 5; i++ {
		a := w.postToken(tokenForm(assertion(t, sa, nil)))
		if a.status != 200 {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
		n := num(t, a.body["expires_in"])
		if n < 600 || n > 630 {
			t.Errorf("expires_in %d outside 600..630", n)
		}
		c := w.srv.Requests("token", 0)[i].Issued.Claims
		if c["exp"].(int64)-c["iat"].(int64) != n {
			t.Errorf("exp-iat %d != expires_in %d with backdate 0", c["exp"].(int64)-c["iat"].(int64), n)
		}
	}
}

func TestTokenErrors(t *testing.T) {
	sa, other := loadKey(t, "sa"), loadKey(t, "other")
	good := func() url.Values { return tokenForm(assertion(t, sa, nil)) }
	with := func(k, v string) url.Values {
		f := good()
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	now := time.Now().Unix()
	cases := []struct {
		name   string
		form   url.Values
		status int
		err    string
		code   int
	}{
		{"missing grant_type", with("grant_type", ""), 400, "invalid_request", 900144},
		{"wrong grant_type", with("grant_type", "password"), 400, "unsupported_grant_type", 70003},
		{"missing client_id", with("client_id", ""), 400, "invalid_request", 900144},
		{"missing scope", with("scope", ""), 400, "invalid_request", 900144},
		{"unknown client", with("client_id", "99999999-9999-4999-8999-999999999999"), 400, "unauthorized_client", 700016},
		{"scope without /.default", with("scope", pgResource+"/user_impersonation"), 400, "invalid_scope", 1002012},
		{"scope /.default alone", with("scope", "/.default"), 400, "invalid_scope", 70011},
		{"two resources", with("scope", pgScope+" https://vault.azure.net/.default"), 400, "invalid_scope", 700022},
		{"client secret", with("client_secret", "hunter2"), 401, "invalid_client", 7000215},
		{"no credential", func() url.Values { f := good(); f.Del("client_assertion"); f.Del("client_assertion_type"); return f }(), 401, "invalid_client", 7000218},
		{"missing assertion", with("client_assertion", ""), 400, "invalid_request", 900144},
		{"missing assertion type", with("client_assertion_type", ""), 400, "invalid_request", 900144},
		{"wrong assertion type", with("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"), 400, "invalid_request", 90011},
		{"assertion not a JWT", with("client_assertion", "not-a-jwt"), 401, "invalid_client", 50027},
		{"assertion without exp", tokenForm(assertion(t, sa, map[string]any{"exp": nil})), 401, "invalid_client", 50027},
		{"wrong issuer", tokenForm(assertion(t, sa, map[string]any{"iss": "https://other.issuer"})), 401, "invalid_client", 700211},
		{"wrong subject", tokenForm(assertion(t, sa, map[string]any{"sub": "system:serviceaccount:apps:intruder"})), 401, "invalid_client", 700213},
		{"subject differs in case", tokenForm(assertion(t, sa, map[string]any{"sub": strings.ToUpper(saSubject)})), 401, "invalid_client", 700213},
		{"wrong audience", tokenForm(assertion(t, sa, map[string]any{"aud": "https://kubernetes.default.svc"})), 401, "invalid_client", 700212},
		{"signed by another key", tokenForm(assertion(t, other, nil)), 401, "invalid_client", 700027},
		{"expired", tokenForm(assertion(t, sa, map[string]any{"iat": now - 700, "nbf": now - 700, "exp": now - 100})), 401, "invalid_client", 700024},
		{"not yet valid", tokenForm(assertion(t, sa, map[string]any{"nbf": now + 300, "exp": now + 900})), 401, "invalid_client", 700024},
	}
	w := newWorld(t, baseConfig(), nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := w.postToken(c.form, "client-request-id", "12345678-1234-4234-8234-123456789abc")
			checkAADError(t, a, c.status, c.err, c.code)
			if a.body["correlation_id"] != "12345678-1234-4234-8234-123456789abc" {
				t.Errorf("correlation_id %v is not the client-request-id", a.body["correlation_id"])
			}
		})
	}

	t.Run("unknown tenant", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, w.tokenURL("00000000-dead-4bad-8bad-000000000000"), strings.NewReader(good().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		checkAADError(t, w.do(req), 400, "invalid_request", 90002)
	})
	t.Run("GET", func(t *testing.T) {
		checkAADError(t, w.get(w.tokenURL(tenantID)), 400, "invalid_request", 900561)
	})
	t.Run("expired message", func(t *testing.T) {
		a := w.postToken(tokenForm(assertion(t, sa, map[string]any{"nbf": nil, "exp": now - 10})))
		desc := a.body["error_description"].(string)
		if !strings.Contains(desc, "assertion valid from 1970-01-01T00:00:00.0000000Z, expiry time of assertion") {
			t.Errorf("description %q", desc)
		}
	})
	t.Run("messages name the mismatch", func(t *testing.T) {
		a := w.postToken(tokenForm(assertion(t, sa, map[string]any{"sub": "system:serviceaccount:x:y"})))
		if !strings.Contains(a.body["error_description"].(string), "assertion subject 'system:serviceaccount:x:y'") {
			t.Errorf("description %q", a.body["error_description"])
		}
	})
}

func TestTokenErrorsConfigDependent(t *testing.T) {
	sa := loadKey(t, "sa")
	t.Run("legacy federation errors", func(t *testing.T) {
		cfg := baseConfig()
		cfg.FederationErrors = "legacy"
		w := newWorld(t, cfg, nil)
		for _, over := range []map[string]any{{"iss": "https://x"}, {"sub": "system:serviceaccount:a:b"}, {"aud": "x"}} {
			a := w.postToken(tokenForm(assertion(t, sa, over)))
			checkAADError(t, a, 400, "invalid_request", 70021)
			if !strings.Contains(a.body["error_description"].(string), "Assertion Issuer: '") {
				t.Errorf("description %q", a.body["error_description"])
			}
		}
	})
	t.Run("resource not in the tenant", func(t *testing.T) {
		cfg := baseConfig()
		cfg.Resources = []string{"https://vault.azure.net"}
		w := newWorld(t, cfg, nil)
		checkAADError(t, w.postToken(tokenForm(assertion(t, sa, nil))), 400, "invalid_resource", 500011)
	})
	t.Run("issuer trusted by the app but unknown to the fake", func(t *testing.T) {
		cfg := baseConfig()
		cfg.Issuers = nil
		w := newWorld(t, cfg, nil)
		checkAADError(t, w.postToken(tokenForm(assertion(t, sa, nil))), 400, "invalid_request", 90061)
	})
	t.Run("clock skew tolerance", func(t *testing.T) {
		cfg := baseConfig()
		cfg.ClockSkewS = 120
		w := newWorld(t, cfg, nil)
		now := time.Now().Unix()
		a := w.postToken(tokenForm(assertion(t, sa, map[string]any{"exp": now - 60})))
		if a.status != 200 {
			t.Errorf("expired 60s ago with 120s skew: %d %s", a.status, a.raw)
		}
		a = w.postToken(tokenForm(assertion(t, sa, map[string]any{"exp": now - 200})))
		checkAADError(t, a, 401, "invalid_client", 700024)
	})
	t.Run("audience list and extra OIDC scopes", func(t *testing.T) {
		w := newWorld(t, baseConfig(), nil)
		f := tokenForm(assertion(t, sa, map[string]any{"aud": []string{"https://kubernetes.default.svc", exchangeAud}}))
		f.Set("scope", pgScope+" openid offline_access")
		if a := w.postToken(f); a.status != 200 {
			t.Errorf("%d %s", a.status, a.raw)
		}
	})
}

// issuerServer serves an OIDC issuer's discovery document and JWKS, like a
// kube-apiserver's /.well-known/openid-configuration and /openid/v1/jwks.
type issuerServer struct {
	*httptest.Server
	mu    sync.Mutex
	keys  []byte
	fetch int
	down  bool
}

func newIssuerServer(t *testing.T, keys []byte) *issuerServer {
	is := &issuerServer{keys: keys}
	is.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		defer is.mu.Unlock()
		if is.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/openid/v1/jwks",
				"response_types_supported": []string{"id_token"}, "id_token_signing_alg_values_supported": []string{"RS256"}})
		case "/openid/v1/jwks":
			is.fetch++
			w.Write(is.keys)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(is.Close)
	return is
}

func (is *issuerServer) set(f func()) {
	is.mu.Lock()
	defer is.mu.Unlock()
	f()
}

func TestIssuerKeysByDiscoveryAndURL(t *testing.T) {
	sa, other := loadKey(t, "sa"), loadKey(t, "other")
	iss := newIssuerServer(t, pki.JWKS(&sa.PublicKey))
	for _, mode := range []string{"oidc_discovery", "jwks_url"} {
		t.Run(mode, func(t *testing.T) {
			iss.set(func() { iss.keys = pki.JWKS(&sa.PublicKey); iss.down = false })
			cfg := baseConfig()
			ic := IssuerConfig{Issuer: iss.URL}
			if mode == "oidc_discovery" {
				ic.OIDCDiscovery = true
			} else {
				ic.JWKSURL = iss.URL + "/openid/v1/jwks"
			}
			cfg.Issuers = []IssuerConfig{ic}
			cfg.Apps[0].FederatedCredentials[0].Issuer = iss.URL
			w := newWorld(t, cfg, iss.Client())
			mk := func(key string) string {
				return assertion(t, loadKey(t, key), map[string]any{"iss": iss.URL})
			}
			if a := w.postToken(tokenForm(mk("sa"))); a.status != 200 {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			// A kid the issuer does not publish: refetch, then 7000272.
			a := w.postToken(tokenForm(mk("other")))
			checkAADError(t, a, 401, "invalid_client", 7000272)
			if !strings.Contains(a.body["error_description"].(string), pki.KeyID(&other.PublicKey)) {
				t.Errorf("description does not name the kid: %s", a.body["error_description"])
			}
			// Key rotation: once published, the new key is picked up.
			iss.set(func() { iss.keys = pki.JWKS(&sa.PublicKey, &other.PublicKey) })
			if a := w.postToken(tokenForm(mk("other"))); a.status != 200 {
				t.Fatalf("after rotation: %d %s", a.status, a.raw)
			}
			// Issuer unreachable (and cache forgotten by a config change): 90061.
			iss.set(func() { iss.down = true })
			w.srv.SetConfig(cfg)
			checkAADError(t, w.postToken(tokenForm(mk("sa"))), 400, "invalid_request", 90061)
		})
	}
}

func TestIssuerKeysFromJWKSFile(t *testing.T) {
	sa := loadKey(t, "sa")
	path := t.TempDir() + "/jwks.json"
	if err := writeFileAtomic(path, json.RawMessage(pki.JWKS(&sa.PublicKey))); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.Issuers = []IssuerConfig{{Issuer: kubeIssuer, JWKSFile: path}}
	w := newWorld(t, cfg, nil)
	if a := w.postToken(tokenForm(assertion(t, sa, nil))); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	checkAADError(t, w.postToken(tokenForm(assertion(t, loadKey(t, "other"), nil))), 401, "invalid_client", 7000272)
}
