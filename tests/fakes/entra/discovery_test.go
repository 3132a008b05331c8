package entra

import (
	"net/url"
	"strings"
	"testing"

	"pgtoken-rotator/tests/fakes/pki"
)

func TestOpenIDConfiguration(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	a := w.get(w.entra.URL + "/" + tenantID + "/v2.0/.well-known/openid-configuration")
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	base := w.entra.URL + "/" + tenantID
	want := map[string]string{
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"jwks_uri":               base + "/discovery/v2.0/keys",
		"issuer":                 base + "/v2.0",
		"end_session_endpoint":   base + "/oauth2/v2.0/logout",
	}
	for k, v := range want {
		if a.body[k] != v {
			t.Errorf("%s = %v, want %s", k, a.body[k], v)
		}
	}

	c := w.get(w.entra.URL + "/organizations/v2.0/.well-known/openid-configuration")
	if c.status != 200 || c.body["issuer"] != w.entra.URL+"/{tenantid}/v2.0" {
		t.Errorf("organizations: %d %v", c.status, c.body["issuer"])
	}

	bad := w.get(w.entra.URL + "/no-such-tenant.example/v2.0/.well-known/openid-configuration")
	checkAADError(t, bad, 400, "invalid_tenant", 90002)
}

func TestInstanceDiscovery(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	host := strings.TrimPrefix(w.entra.URL, "https://")
	ae := w.entra.URL + "/" + tenantID + "/oauth2/v2.0/authorize"
	a := w.get(w.entra.URL + "/common/discovery/instance?api-version=1.1&authorization_endpoint=" + url.QueryEscape(ae))
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if a.body["tenant_discovery_endpoint"] != w.entra.URL+"/"+tenantID+"/v2.0/.well-known/openid-configuration" {
		t.Errorf("tenant_discovery_endpoint %v", a.body["tenant_discovery_endpoint"])
	}
	if a.body["api-version"] != "1.1" {
		t.Errorf("api-version %v", a.body["api-version"])
	}
	md := a.body["metadata"].([]any)[0].(map[string]any)
	if md["preferred_network"] != host || md["aliases"].([]any)[0] != host {
		t.Errorf("metadata %v", md)
	}

	// MSAL Python drops the port from authorization_endpoint.
	noPort := "https://127.0.0.1/" + tenantID + "/oauth2/v2.0/authorize"
	b := w.get(w.entra.URL + "/common/discovery/instance?api-version=1.0&authorization_endpoint=" + url.QueryEscape(noPort))
	if b.status != 200 || b.body["tenant_discovery_endpoint"] != a.body["tenant_discovery_endpoint"] {
		t.Errorf("without port: %d %s", b.status, b.raw)
	}

	other := w.get(w.entra.URL + "/common/discovery/instance?api-version=1.1&authorization_endpoint=" +
		url.QueryEscape("https://login.example.com/"+tenantID+"/oauth2/v2.0/authorize"))
	checkAADError(t, other, 400, "invalid_instance", 50049)
	checkAADError(t, w.get(w.entra.URL+"/common/discovery/instance?api-version=1.1"), 400, "invalid_request", 50050)
}

func TestKeysVerifyIssuedTokens(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	for _, p := range []string{"/" + tenantID + "/discovery/v2.0/keys", "/common/discovery/keys"} {
		a := w.get(w.entra.URL + p)
		if a.status != 200 {
			t.Fatalf("%s: %d", p, a.status)
		}
		keys, err := parseJWKS(a.raw)
		if err != nil || len(keys) != 1 {
			t.Fatalf("%s: %v %v", p, keys, err)
		}
		tok := w.postToken(tokenForm(assertion(t, loadKey(t, "sa"), nil))).body["access_token"].(string)
		if _, err := pki.Verify(tok, keys[0].pub); err != nil {
			t.Errorf("token does not verify with the published key: %v", err)
		}
		if keys[0].kid != decodeJWT(tok).Header["kid"] {
			t.Errorf("kid %s differs from the token's %v", keys[0].kid, decodeJWT(tok).Header["kid"])
		}
	}
	if a := w.get(w.entra.URL + "/nope"); a.status != 404 {
		t.Errorf("unknown path: %d", a.status)
	}
}
