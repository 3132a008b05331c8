package entra

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"pgtoken-rotator/tests/fakes/pki"
)

// baseURL is this server as the client reached it (Entra's endpoints are
// always HTTPS).
func baseURL(r *http.Request) string { return "https://" + r.Host }

// handleOpenIDConfig is GET /{tenant}/v2.0/.well-known/openid-configuration,
// which MSAL reads before the first token request (tenant discovery). The
// document has Entra's shape, with every endpoint on this server. For
// "common" and "organizations" the issuer keeps Entra's {tenantid}
// placeholder; an unknown tenant is 400 invalid_tenant, AADSTS90002.
func (s *Server) handleOpenIDConfig(w http.ResponseWriter, r *http.Request, rec *Record, tenant string) {
	cfg := s.config()
	issuerTenant := cfg.TenantID
	switch {
	case tenantMatches(cfg, tenant):
		tenant = cfg.TenantID
	case tenant == "common" || tenant == "organizations":
		issuerTenant = "{tenantid}"
	default:
		e := tenantNotFound(tenant)
		e.err = "invalid_tenant"
		s.writeAADError(w, r, rec, e)
		return
	}
	if r.Method != http.MethodGet {
		s.writeAADError(w, r, rec, badRequest(900561, "The endpoint only accepts GET, OPTIONS requests. Received a %s request.", r.Method))
		return
	}
	base := baseURL(r) + "/" + tenant
	entraHeaders(w, r)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                baseURL(r) + "/" + issuerTenant + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
			"cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce",
			"preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"kerberos_endpoint":     base + "/kerberos",
		"tenant_region_scope":   "NA",
		"cloud_instance_name":   "microsoftonline.com",
		"cloud_graph_host_name": "graph.windows.net",
		"msgraph_host":          "graph.microsoft.com",
		"rbac_url":              "https://pas.windows.net",
	})
}

// handleInstanceDiscovery is GET /common/discovery/instance?api-version=
// 1.1&authorization_endpoint=https://HOST/TENANT/oauth2/v2.0/authorize,
// which MSAL calls for an authority host it does not know (unless instance
// discovery is disabled). It answers for this server's own host name only
// (any port: MSAL Python drops the port from authorization_endpoint); any
// other host is "invalid_instance", as Entra answers for hosts it does not
// know. The tenant discovery endpoint it returns is on this server.
func (s *Server) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request, rec *Record) {
	q := r.URL.Query()
	ae := q.Get("authorization_endpoint")
	if ae == "" {
		s.writeAADError(w, r, rec, badRequest(50050, "The request is malformed: the authorization_endpoint parameter is missing."))
		return
	}
	u, err := url.Parse(ae)
	parts := []string{""}
	if err == nil {
		parts = strings.Split(strings.Trim(u.Path, "/"), "/")
	}
	if err != nil || u.Scheme != "https" || !strings.EqualFold(u.Hostname(), hostname(r.Host)) || parts[0] == "" {
		e := badRequest(50049, "Unknown or invalid instance.")
		e.err = "invalid_instance"
		s.writeAADError(w, r, rec, e)
		return
	}
	aliases := []string{r.Host}
	if u.Host != r.Host {
		aliases = append(aliases, u.Host)
	}
	entraHeaders(w, r)
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": baseURL(r) + "/" + parts[0] + "/v2.0/.well-known/openid-configuration",
		"api-version":               q.Get("api-version"),
		"metadata": []map[string]any{{
			"preferred_network": r.Host,
			"preferred_cache":   r.Host,
			"aliases":           aliases,
		}},
	})
}

// hostname is the host part of a Host header.
func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// handleKeys is GET /{tenant}/discovery/v2.0/keys (and the v1 and /common
// forms): the public key that signs the access tokens, as a JWKS.
func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request, rec *Record) {
	entraHeaders(w, r)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(pki.JWKS(&s.idpKey.PublicKey))
}
