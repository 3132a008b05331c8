package entra

import (
	"net/http"
	"strings"
)

// EntraHandler serves the Entra ID endpoints and, under /_fake/, the
// control API. Serve it over HTTPS.
func (s *Server) EntraHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_fake/") {
			s.control(w, r)
			return
		}
		seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		is := func(tail ...string) bool {
			if len(seg) != len(tail)+1 || seg[0] == "" {
				return false
			}
			for i, t := range tail {
				if seg[i+1] != t {
					return false
				}
			}
			return true
		}
		tenant := seg[0]
		switch {
		case is("oauth2", "v2.0", "token"):
			s.serve("entra", "token", w, r, func(w http.ResponseWriter, r *http.Request, rec *Record) {
				s.handleToken(w, r, rec, tenant)
			})
		case is("v2.0", ".well-known", "openid-configuration"):
			s.serve("entra", "openid-configuration", w, r, func(w http.ResponseWriter, r *http.Request, rec *Record) {
				s.handleOpenIDConfig(w, r, rec, tenant)
			})
		case is("discovery", "instance"):
			s.serve("entra", "instance-discovery", w, r, s.handleInstanceDiscovery)
		case is("discovery", "v2.0", "keys"), is("discovery", "keys"):
			s.serve("entra", "keys", w, r, s.handleKeys)
		default:
			s.serve("entra", "unknown", w, r, notFound)
		}
	})
}

// IMDSHandler serves the managed identity endpoints. Serve it over plain
// HTTP (point the SDKs at it with AZURE_POD_IDENTITY_AUTHORITY_HOST).
func (s *Server) IMDSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// msal-node asks for .../token/ (trailing slash); IMDS serves both.
		switch strings.TrimSuffix(r.URL.Path, "/") {
		case "/metadata/identity/oauth2/token":
			s.serve("imds", "imds", w, r, s.handleIMDS)
		case "/msi/token":
			s.serve("imds", "app-service", w, r, s.handleAppService)
		default:
			s.serve("imds", "unknown", w, r, notFound)
		}
	})
}

func notFound(w http.ResponseWriter, r *http.Request, rec *Record) {
	rec.Error = "not_found"
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "error_description": "the fake serves no " + r.URL.Path})
}
