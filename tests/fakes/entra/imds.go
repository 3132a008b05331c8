package entra

import (
	"net/http"
	"regexp"
	"strconv"
)

func writeIMDSJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Server", "IMDS/fake")
	writeJSON(w, status, v)
}

func (s *Server) imdsError(w http.ResponseWriter, rec *Record, status int, code, desc string) {
	rec.Error = code
	writeIMDSJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

var apiVersionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// pickIdentity chooses the managed identity a request names (client_id,
// object_id or msi_res_id/mi_res_id), or the default one; errs is the IMDS
// error description when there is none.
func pickIdentity(cfg *Config, q map[string][]string) (mi *ManagedIdentity, errs string) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	want := map[string]string{"client_id": get("client_id"), "object_id": get("object_id"), "resource_id": get("msi_res_id")}
	if want["resource_id"] == "" {
		want["resource_id"] = get("mi_res_id")
	}
	named := false
	for i := range cfg.ManagedIdentities {
		m := &cfg.ManagedIdentities[i]
		for k, v := range want {
			if v == "" {
				continue
			}
			named = true
			if (k == "client_id" && m.ClientID == v) || (k == "object_id" && m.ObjectID == v) ||
				(k == "resource_id" && m.ResourceID == v) {
				return m, ""
			}
		}
	}
	if named {
		return nil, "Identity not found"
	}
	for i := range cfg.ManagedIdentities {
		if cfg.ManagedIdentities[i].Default {
			return &cfg.ManagedIdentities[i], ""
		}
	}
	switch len(cfg.ManagedIdentities) {
	case 0:
		return nil, "Identity not found"
	case 1: // a VM with a single user-assigned identity uses it
		return &cfg.ManagedIdentities[0], ""
	}
	return nil, "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"
}

// handleIMDS is the Instance Metadata Service token endpoint,
// GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R
// [&client_id=C|&object_id=O|&msi_res_id=ID], header "Metadata: true".
// The answer has IMDS's shape: every value a string.
func (s *Server) handleIMDS(w http.ResponseWriter, r *http.Request, rec *Record) {
	if r.Header.Get("Metadata") != "true" {
		s.imdsError(w, rec, http.StatusBadRequest, "bad_request_102", "Required metadata header not specified")
		return
	}
	if r.Method != http.MethodGet {
		s.imdsError(w, rec, http.StatusMethodNotAllowed, "method_not_allowed", "Only GET is allowed")
		return
	}
	q := r.URL.Query()
	v := q.Get("api-version")
	switch {
	case v == "":
		s.imdsError(w, rec, http.StatusBadRequest, "invalid_request", "Required query variable 'api-version' is missing")
		return
	case !apiVersionRE.MatchString(v) || v < "2018-02-01":
		s.imdsError(w, rec, http.StatusBadRequest, "invalid_request", "Invalid api-version '"+v+"'")
		return
	}
	s.managedIdentityToken(w, r, rec, q.Get("resource"), q, false)
}

// handleAppService is the App Service / Functions flavour of the managed
// identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER in the SDKs):
// GET /msi/token?api-version=2019-08-01&resource=R[&client_id=...|
// &object_id=...|&mi_res_id=...], header X-IDENTITY-HEADER. Enabled by
// app_service_identity_header in the config.
func (s *Server) handleAppService(w http.ResponseWriter, r *http.Request, rec *Record) {
	cfg := s.config()
	if cfg.AppServiceIdentityHeader == "" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("X-IDENTITY-HEADER") != cfg.AppServiceIdentityHeader {
		s.imdsError(w, rec, http.StatusUnauthorized, "unauthorized", "X-IDENTITY-HEADER is missing or wrong")
		return
	}
	q := r.URL.Query()
	if q.Get("api-version") != "2019-08-01" {
		s.imdsError(w, rec, http.StatusBadRequest, "invalid_request", "api-version must be 2019-08-01")
		return
	}
	s.managedIdentityToken(w, r, rec, q.Get("resource"), q, true)
}

func (s *Server) managedIdentityToken(w http.ResponseWriter, r *http.Request, rec *Record, resource string, q map[string][]string, appService bool) {
	cfg := s.config()
	if resource == "" {
		s.imdsError(w, rec, http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing")
		return
	}
	mi, msg := pickIdentity(cfg, q)
	if mi == nil {
		s.imdsError(w, rec, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	if !cfg.resourceAllowed(resource) {
		rec.ErrorCode = 500011
		s.imdsError(w, rec, http.StatusBadRequest, "invalid_resource",
			"AADSTS500011: The resource principal named "+resource+" was not found in the tenant named "+cfg.tenantName()+
				". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.")
		return
	}
	lifetime := cfg.imdsTokenLifetime()
	tok, err := s.issue(cfg, rec, resource, mi.ClientID, mi.ObjectID, mi.ResourceID, lifetime)
	if err != nil {
		rec.Detail = err.Error()
		s.imdsError(w, rec, http.StatusInternalServerError, "unknown", "Failed to retrieve token from the Active directory.")
		return
	}
	c := rec.Issued.Claims
	str := func(v any) string { return strconv.FormatInt(v.(int64), 10) }
	body := map[string]string{
		"access_token": tok,
		"client_id":    mi.ClientID,
		"expires_on":   str(c["exp"]),
		"resource":     resource,
		"token_type":   "Bearer",
	}
	if !appService {
		body["refresh_token"] = ""
		body["expires_in"] = strconv.Itoa(lifetime)
		body["ext_expires_in"] = strconv.Itoa(lifetime)
		body["not_before"] = str(c["nbf"])
	}
	writeIMDSJSON(w, http.StatusOK, body)
}
