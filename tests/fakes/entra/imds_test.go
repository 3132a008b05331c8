package entra

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

const imdsQuery = "api-version=2018-02-01&resource=" + pgResource

func TestIMDSMetadataHeader(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	for _, hdr := range [][]string{nil, {"Metadata", "True"}, {"Metadata", "yes"}} {
		a := w.imdsToken(imdsQuery, hdr...)
		if a.status != 400 || a.body["error"] != "bad_request_102" || a.body["error_description"] != "Required metadata header not specified" {
			t.Errorf("header %v: %d %s", hdr, a.status, a.raw)
		}
	}
	if a := w.imdsToken(imdsQuery, "Metadata", "true"); a.status != 200 {
		t.Errorf("with Metadata: true: %d %s", a.status, a.raw)
	}
	// msal-node asks with a trailing slash.
	if a := w.get(w.imds.URL+"/metadata/identity/oauth2/token/?"+imdsQuery, "Metadata", "true"); a.status != 200 {
		t.Errorf("trailing slash: %d %s", a.status, a.raw)
	}
}

func TestIMDSToken(t *testing.T) {
	cfg := baseConfig()
	cfg.IMDSTokenLifetimeS = 86400
	w := newWorld(t, cfg, nil)
	idp := &loadKey(t, "idp").PublicKey

	cases := []struct {
		name, query, client, object string
	}{
		{"default identity", imdsQuery, miDefault, miDefaultO},
		{"by client_id", imdsQuery + "&client_id=" + miOther, miOther, miOtherO},
		{"by object_id", imdsQuery + "&object_id=" + miOtherO, miOther, miOtherO},
		{"by msi_res_id", imdsQuery + "&msi_res_id=" + url.QueryEscape(miOtherRes), miOther, miOtherO},
		{"by mi_res_id", imdsQuery + "&mi_res_id=" + url.QueryEscape(miOtherRes), miOther, miOtherO},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := time.Now().Unix()
			a := w.imdsToken(c.query, "Metadata", "true")
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			for _, k := range []string{"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"} {
				if _, ok := a.body[k].(string); !ok {
					t.Errorf("%s = %v (%T): IMDS sends strings", k, a.body[k], a.body[k])
				}
			}
			if a.body["client_id"] != c.client || a.body["resource"] != pgResource || a.body["token_type"] != "Bearer" ||
				a.body["expires_in"] != "86400" || a.body["ext_expires_in"] != "86400" {
				t.Errorf("answer %s", a.raw)
			}
			claims, err := pki.Verify(a.body["access_token"].(string), idp)
			if err != nil {
				t.Fatal(err)
			}
			if claims["oid"] != c.object || claims["sub"] != c.object || claims["appid"] != c.client ||
				claims["aud"] != pgResource || claims["tid"] != tenantID || claims["ver"] != "1.0" {
				t.Errorf("claims %v", claims)
			}
			if on, _ := strconv.ParseInt(a.body["expires_on"].(string), 10, 64); on != claimInt(t, claims, "exp") || on < before+86400 {
				t.Errorf("expires_on %v, exp %v", a.body["expires_on"], claims["exp"])
			}
			if nb, _ := strconv.ParseInt(a.body["not_before"].(string), 10, 64); nb != claimInt(t, claims, "nbf") {
				t.Errorf("not_before %v, nbf %v", a.body["not_before"], claims["nbf"])
			}
			if c.client == miOther && claims["xms_mirid"] != miOtherRes {
				t.Errorf("xms_mirid %v", claims["xms_mirid"])
			}
		})
	}
}

func TestIMDSErrors(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	cases := []struct {
		name, query string
		status      int
		err, desc   string
	}{
		{"unknown client_id", imdsQuery + "&client_id=00000000-0000-4000-8000-000000000000", 400, "invalid_request", "Identity not found"},
		{"unknown object_id", imdsQuery + "&object_id=00000000-0000-4000-8000-000000000000", 400, "invalid_request", "Identity not found"},
		{"no resource", "api-version=2018-02-01", 400, "invalid_request", "Required query variable 'resource' is missing"},
		{"no api-version", "resource=" + pgResource, 400, "invalid_request", "Required query variable 'api-version' is missing"},
		{"old api-version", "api-version=2017-09-01&resource=" + pgResource, 400, "invalid_request", "Invalid api-version '2017-09-01'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := w.imdsToken(c.query, "Metadata", "true")
			if a.status != c.status || a.body["error"] != c.err || a.body["error_description"] != c.desc {
				t.Errorf("%d %s", a.status, a.raw)
			}
		})
	}
	t.Run("several identities, none default", func(t *testing.T) {
		cfg := baseConfig()
		cfg.ManagedIdentities[0].Default = false
		w.srv.SetConfig(cfg)
		a := w.imdsToken(imdsQuery, "Metadata", "true")
		if a.status != 400 || a.body["error"] != "invalid_request" {
			t.Errorf("%d %s", a.status, a.raw)
		}
		cfg.ManagedIdentities = cfg.ManagedIdentities[1:]
		w.srv.SetConfig(cfg)
		if a := w.imdsToken(imdsQuery, "Metadata", "true"); a.status != 200 || a.body["client_id"] != miOther {
			t.Errorf("single identity not used: %d %s", a.status, a.raw)
		}
	})
	t.Run("POST", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, w.imds.URL+"/metadata/identity/oauth2/token?"+imdsQuery, nil)
		req.Header.Set("Metadata", "true")
		if a := w.do(req); a.status != 405 {
			t.Errorf("%d %s", a.status, a.raw)
		}
	})
}

func TestAppServiceEndpoint(t *testing.T) {
	cfg := baseConfig()
	w := newWorld(t, cfg, nil)
	u := w.imds.URL + "/msi/token?api-version=2019-08-01&resource=" + pgResource
	if a := w.get(u, "X-IDENTITY-HEADER", "s3cret"); a.status != 404 {
		t.Errorf("disabled endpoint: %d", a.status)
	}
	cfg = baseConfig()
	cfg.AppServiceIdentityHeader = "s3cret"
	w.srv.SetConfig(cfg)
	if a := w.get(u, "X-IDENTITY-HEADER", "wrong"); a.status != 401 {
		t.Errorf("wrong header: %d", a.status)
	}
	a := w.get(u+"&client_id="+miOther, "X-IDENTITY-HEADER", "s3cret")
	if a.status != 200 || a.body["client_id"] != miOther || a.body["expires_on"] == nil || a.body["expires_in"] != nil {
		t.Errorf("%d %s", a.status, a.raw)
	}
	if r := w.srv.Requests("app-service", 0); len(r) != 3 || r[2].Headers["X-IDENTITY-HEADER"] != "<present>" {
		t.Errorf("records %+v", r)
	}
}
